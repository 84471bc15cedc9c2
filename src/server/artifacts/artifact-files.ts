import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, mkdirSync, openSync, closeSync, fsyncSync, readdirSync, renameSync, statSync, unlinkSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { DriftlessError } from '../../protocol/errors.ts';

/**
 * The bytes of uploaded artifacts, one file per artifact named by its SHA-256. An upload is
 * streamed to a temporary file while it is hashed, fsynced, then renamed to its digest and the
 * directory fsynced: a file under a digest's name is always whole. An upload that fails, is cut
 * short or is too large leaves nothing behind.
 */
export type ArtifactFiles = {
  receive(body: AsyncIterable<Uint8Array>, limits: { maxBytes: number; expectedBytes?: number }): Promise<{ sha256: string; size: number }>;
  /** The bytes of a stored artifact as a stream with their size, or null when there is no such file. */
  open(sha256: string): Promise<{ stream: Readable; size: number } | null>;
  remove(sha256: string): Promise<void>;
};

const TEMPORARY = '.tmp';
const DIGEST = /^[0-9a-f]{64}$/;

export function checkDigest(sha256: string): string {
  if (!DIGEST.test(sha256)) throw new DriftlessError('invalid-input', `"${sha256}" is not a SHA-256 digest`);
  return sha256;
}

/** Reads an upload, hashing it and holding it to its limits; each piece goes to `write` as it arrives. */
export async function receiveUpload(
  body: AsyncIterable<Uint8Array>,
  { maxBytes, expectedBytes }: { maxBytes: number; expectedBytes?: number },
  write: (chunk: Uint8Array) => Promise<void>,
): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of body) {
      size += chunk.length;
      if (size > maxBytes) throw new DriftlessError('payload-too-large', `artifact is larger than ${maxBytes} bytes`);
      hash.update(chunk);
      await write(chunk);
    }
  } catch (error) {
    if (error instanceof DriftlessError) throw error;
    throw new DriftlessError('invalid-input', `upload failed: ${(error as Error).message}`);
  }
  if (expectedBytes !== undefined && size !== expectedBytes) {
    throw new DriftlessError('invalid-input', `upload was cut short: ${size} of ${expectedBytes} bytes arrived`);
  }
  return { sha256: hash.digest('hex'), size };
}

export function createArtifactFiles(dir: string): ArtifactFiles {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // A temporary file is an upload a crash interrupted: never renamed, so never referenced.
  for (const name of readdirSync(dir)) if (name.endsWith(TEMPORARY)) unlinkSync(join(dir, name));
  const syncDir = () => {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  };
  const pathOf = (sha256: string) => join(dir, checkDigest(sha256));

  return {
    async receive(body, limits) {
      const temporary = join(dir, `upload-${randomUUID()}${TEMPORARY}`);
      const file = await open(temporary, 'wx', 0o600);
      let kept = false;
      try {
        const { sha256, size } = await receiveUpload(body, limits, async (chunk) => {
          for (let offset = 0; offset < chunk.length; ) offset += (await file.write(chunk, offset)).bytesWritten;
        });
        await file.sync();
        await file.close();
        renameSync(temporary, pathOf(sha256));
        syncDir();
        kept = true;
        return { sha256, size };
      } catch (error) {
        if (error instanceof DriftlessError) throw error;
        throw new DriftlessError('invalid-input', `upload failed: ${(error as Error).message}`);
      } finally {
        if (!kept) {
          await file.close().catch(() => undefined);
          try {
            unlinkSync(temporary);
          } catch {
            // already gone
          }
        }
      }
    },
    async open(sha256) {
      const path = pathOf(sha256);
      let size: number;
      try {
        size = statSync(path).size;
      } catch {
        return null;
      }
      return { stream: createReadStream(path), size };
    },
    async remove(sha256) {
      try {
        unlinkSync(pathOf(sha256));
        syncDir();
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    },
  };
}
