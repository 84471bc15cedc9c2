import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { sql, type Kysely } from 'kysely';
import { DriftlessError } from '../../protocol/errors.ts';
import type { Database } from '../store/schema.ts';
import { checkDigest, receiveUpload, type ArtifactFiles } from './artifact-files.ts';

/** Pieces of a stored file: large enough to keep rows few, small enough to stream without holding a whole artifact. */
const PIECE_BYTES = 1024 * 1024;
const UPLOAD_PREFIX = 'upload:';
/** An upload older than this is one a crash interrupted (no upload of a permitted size takes an hour). */
const STALE_UPLOAD_MS = 3600_000;

/**
 * Artifact bytes in the database (table file_chunks), for server replicas on PostgreSQL: an upload
 * through one replica is downloaded through any. An upload is written under a temporary key,
 * piece by piece as it arrives, and renamed to its digest in one statement once whole, so a
 * digest's pieces are always complete; a failed upload's pieces are deleted, and those of an
 * upload a crash interrupted are swept an hour later.
 */
export function createDatabaseArtifactFiles(db: Kysely<Database>, now: () => number = Date.now): ArtifactFiles {
  const sweep = () => db.deleteFrom('file_chunks').where('key', 'like', `${UPLOAD_PREFIX}%`).where('key', '<', `${UPLOAD_PREFIX}${String(now() - STALE_UPLOAD_MS).padStart(15, '0')}`).execute();

  return {
    async receive(body, limits) {
      await sweep();
      // Named by when it began, so a sweep can tell an abandoned upload from one under way.
      const temporary = `${UPLOAD_PREFIX}${String(now()).padStart(15, '0')}:${randomUUID()}`;
      let n = 0;
      // What arrived since the last piece was written, joined only when a whole piece is there.
      let parts: Buffer[] = [];
      let partBytes = 0;
      const write = (data: Buffer) => db.insertInto('file_chunks').values({ key: temporary, n: n++, data }).execute();
      try {
        const received = await receiveUpload(body, limits, async (chunk) => {
          parts.push(Buffer.from(chunk));
          partBytes += chunk.length;
          if (partBytes < PIECE_BYTES) return;
          let rest = Buffer.concat(parts, partBytes);
          while (rest.length >= PIECE_BYTES) {
            await write(rest.subarray(0, PIECE_BYTES));
            rest = rest.subarray(PIECE_BYTES);
          }
          parts = rest.length > 0 ? [rest] : [];
          partBytes = rest.length;
        });
        if (partBytes > 0) await write(Buffer.concat(parts, partBytes));
        await db.transaction().execute(async (tx) => {
          // The same bytes uploaded before are kept as they are.
          const existing = await tx.selectFrom('file_chunks').select('n').where('key', '=', received.sha256).limit(1).executeTakeFirst();
          if (existing) await tx.deleteFrom('file_chunks').where('key', '=', temporary).execute();
          else await tx.updateTable('file_chunks').set({ key: received.sha256 }).where('key', '=', temporary).execute();
        });
        return received;
      } catch (error) {
        await db.deleteFrom('file_chunks').where('key', '=', temporary).execute().catch(() => undefined);
        if (error instanceof DriftlessError) throw error;
        throw new DriftlessError('invalid-input', `upload failed: ${(error as Error).message}`);
      }
    },

    async open(sha256) {
      const key = checkDigest(sha256);
      // length() of a bytea (PostgreSQL) or a blob (SQLite) is its size in bytes.
      const pieces = await db.selectFrom('file_chunks').select(['n', sql<number>`length(data)`.as('bytes')]).where('key', '=', key).orderBy('n').execute();
      if (pieces.length === 0) return null;
      const size = pieces.reduce((total, p) => total + Number(p.bytes), 0);
      async function* read(): AsyncGenerator<Buffer> {
        for (const { n } of pieces) {
          const row = await db.selectFrom('file_chunks').select('data').where('key', '=', key).where('n', '=', n).executeTakeFirst();
          if (!row) throw new Error(`artifact ${key} lost its piece ${n} while being read`);
          yield Buffer.from(row.data);
        }
      }
      return { stream: Readable.from(read()), size };
    },

    async remove(sha256) {
      await db.deleteFrom('file_chunks').where('key', '=', checkDigest(sha256)).execute();
    },
  };
}
