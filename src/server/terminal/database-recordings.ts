import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { Recording } from '../../protocol/channel.ts';
import type { Database } from '../store/schema.ts';
import { castRecorder, parseCastHeader, RECORDING_ID, type Recordings } from './recordings.ts';

const KEY_PREFIX = 'recording:';
/** Output is written in pieces of about this size, or at least this often, and when the session ends. */
const FLUSH_BYTES = 64 * 1024;
const FLUSH_MS = 2_000;

/**
 * Session recordings in the database (table file_chunks), for server replicas on PostgreSQL: a
 * session recorded by the replica that held the device's channel is listed and read through any.
 * The same asciicast v2 text as the files of recordings.ts; its header line is piece 0, so a list
 * reads one small piece per recording.
 */
export function createDatabaseRecordings(db: Kysely<Database>, now: () => number = Date.now, log: (line: string) => void = () => undefined): Recordings {
  return {
    start(what) {
      const id = randomUUID();
      const key = `${KEY_PREFIX}${id}`;
      let n = 0;
      let written: Promise<void> = Promise.resolve();
      let buffered: string[] = [];
      let bufferedBytes = 0;
      // One write at a time, in order; a failed one is logged, and the session goes on.
      const put = (text: string) => {
        const piece = n++;
        written = written
          .then(async () => {
            await db.insertInto('file_chunks').values({ key, n: piece, data: Buffer.from(text, 'utf8') }).execute();
          })
          .catch((error: unknown) => log(`recording ${id}: a piece was not stored: ${(error as Error).message}`));
      };
      const flush = () => {
        if (buffered.length === 0) return;
        put(buffered.join(''));
        buffered = [];
        bufferedBytes = 0;
      };
      const timer = setInterval(flush, FLUSH_MS);
      timer.unref();
      let header = true;
      return castRecorder(id, what, now, {
        line(text) {
          // The header line is a piece of its own: listing reads piece 0 alone.
          if (header) {
            header = false;
            put(text);
            return;
          }
          buffered.push(text);
          bufferedBytes += text.length;
          if (bufferedBytes >= FLUSH_BYTES) flush();
        },
        async end() {
          clearInterval(timer);
          flush();
          await written;
        },
      });
    },

    async list() {
      const heads = await db.selectFrom('file_chunks').select(['key', 'data']).where('key', 'like', `${KEY_PREFIX}%`).where('n', '=', 0).execute();
      const sizes = new Map(
        (await db.selectFrom('file_chunks').select(['key', sql<number>`sum(length(data))`.as('bytes')]).where('key', 'like', `${KEY_PREFIX}%`).groupBy('key').execute()).map((r) => [r.key, Number(r.bytes)]),
      );
      const found: Recording[] = [];
      for (const head of heads) {
        const id = head.key.slice(KEY_PREFIX.length);
        const recording = parseCastHeader(id, Buffer.from(head.data).toString('utf8').trimEnd(), sizes.get(head.key) ?? 0);
        if (recording) found.push(recording);
      }
      return found.sort((a, b) => b.startedAt.localeCompare(a.startedAt));
    },

    async read(id) {
      if (!RECORDING_ID.test(id)) return null;
      const pieces = await db.selectFrom('file_chunks').select('data').where('key', '=', `${KEY_PREFIX}${id}`).orderBy('n').execute();
      if (pieces.length === 0) return null;
      return Buffer.concat(pieces.map((p) => Buffer.from(p.data))).toString('utf8');
    },
  };
}
