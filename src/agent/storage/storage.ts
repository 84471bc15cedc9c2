import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * The seam every durable write of the agent goes through. A write is durable when `write`
 * returns: written to a temporary file, fsynced, renamed over the old one, and the directory
 * fsynced, so a power cut leaves either the old bytes or the new ones. Tests substitute an
 * implementation that loses unsynced writes at a chosen crash point.
 */
export type Storage = {
  read(name: string): string | null;
  write(name: string, text: string): void;
};

export function createDirStorage(dir: string): Storage {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return {
    read(name) {
      try {
        return readFileSync(join(dir, name), 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw error;
      }
    },
    write(name, text) {
      const path = join(dir, name);
      const temporary = `${path}.${process.pid}.tmp`;
      const fd = openSync(temporary, 'w', 0o600);
      try {
        writeFileSync(fd, text);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temporary, path);
      const dirFd = openSync(dirname(path), 'r');
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
    },
  };
}

/** Reads a JSON document written by `writeJson`; a torn or foreign file reads as absent, never as a crash. */
export function readJson<T>(storage: Storage, name: string, isValid: (value: unknown) => value is T): T | null {
  const text = storage.read(name);
  if (text === null) return null;
  try {
    const value: unknown = JSON.parse(text);
    return isValid(value) ? value : null;
  } catch {
    return null;
  }
}

export function writeJson(storage: Storage, name: string, value: unknown): void {
  storage.write(name, `${JSON.stringify(value, null, 1)}\n`);
}
