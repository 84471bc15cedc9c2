import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The file operations the agent's durable state is built from, one flat directory of them. This
 * is the seam the power-cut tests replace: their implementation keeps what was written apart
 * from what was synced, and at a crash point keeps only the synced part (or tears the rest).
 */
export type FileSystem = {
  /** The whole file, or null when it does not exist. */
  read(name: string): Buffer | null;
  list(): string[];
  /** Creates or truncates the file and writes `data`; not durable until `fsync`. */
  writeFile(name: string, data: Uint8Array): void;
  fsync(name: string): void;
  /** Atomically replaces `to` with `from`; durable once the directory is synced. */
  rename(from: string, to: string): void;
  remove(name: string): void;
  /** Makes creations, renames and removals in the directory durable. */
  syncDir(): void;
};

/**
 * Durable state of the agent: named documents, each replaced atomically. A write is durable when
 * `write` returns: a temporary file written and fsynced, renamed over the old one, the directory
 * fsynced, so a power cut leaves either the old bytes or the new ones, never a mix.
 */
export type Storage = {
  read(name: string): string | null;
  write(name: string, text: string): void;
  /** Removes a document (durable on return); a missing one is not an error. */
  remove(name: string): void;
  /** Names of the documents that start with `prefix`, sorted. */
  list(prefix: string): string[];
};

const TEMPORARY = '.tmp';

export function createStorage(fs: FileSystem): Storage {
  // A temporary file left by a crash mid-write is garbage: the rename never happened.
  for (const name of fs.list()) if (name.endsWith(TEMPORARY)) fs.remove(name);
  return {
    read(name) {
      const data = fs.read(name);
      return data === null ? null : data.toString('utf8');
    },
    write(name, text) {
      const temporary = `${name}${TEMPORARY}`;
      fs.writeFile(temporary, Buffer.from(text, 'utf8'));
      fs.fsync(temporary);
      fs.rename(temporary, name);
      fs.syncDir();
    },
    remove(name) {
      if (fs.read(name) === null) return;
      fs.remove(name);
      fs.syncDir();
    },
    list: (prefix) =>
      fs
        .list()
        .filter((name) => name.startsWith(prefix) && !name.endsWith(TEMPORARY))
        .sort(),
  };
}

/** The real file system: one directory, private to the agent. */
export function createDirFileSystem(dir: string): FileSystem {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const at = (name: string) => join(dir, name);
  const withFd = (path: string, flags: string, work: (fd: number) => void) => {
    const fd = openSync(path, flags, 0o600);
    try {
      work(fd);
    } finally {
      closeSync(fd);
    }
  };
  return {
    read(name) {
      try {
        return readFileSync(at(name));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw error;
      }
    },
    list: () => readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name),
    writeFile(name, data) {
      withFd(at(name), 'w', (fd) => {
        for (let offset = 0; offset < data.length; ) offset += writeSync(fd, data, offset);
      });
    },
    fsync: (name) => withFd(at(name), 'r+', fsyncSync),
    rename: (from, to) => renameSync(at(from), at(to)),
    remove(name) {
      try {
        unlinkSync(at(name));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    },
    syncDir: () => withFd(dir, 'r', fsyncSync),
  };
}

export function createDirStorage(dir: string): Storage {
  return createStorage(createDirFileSystem(dir));
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
