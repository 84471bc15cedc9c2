import type { FileSystem } from './storage.ts';

/**
 * A test implementation of the `FileSystem` seam that models what a power cut keeps. A kill -9
 * tests nothing about fsync (the kernel keeps the page cache), so the power-cut tests run the
 * agent's durable writes on this model instead.
 *
 * Files are inodes holding what was written apart from what was fsynced; the directory holds its
 * entries as last synced apart from the creations, renames and removals made since. `crash` keeps
 * only what a power cut may leave, choosing adversarially from a seeded random source:
 * - content written but not fsynced is dropped (the last synced content stays) or torn to a random
 *   prefix of what was written (the whole of it included);
 * - directory operations not yet synced are lost, or a random prefix of them is applied in the
 *   order they were made, as a journaling file system may have done.
 * The model is stricter than ext4 in one way on purpose: fsync of a new file does not make its
 * name durable; only `syncDir` does (POSIX promises no more).
 */
export type PowerCutFileSystem = FileSystem & {
  /** Lets `n` more mutating operations complete; the next one (and everything after it) throws `PowerCut`. */
  crashAfter(n: number): void;
  /** Mutating operations (writeFile, fsync, rename, remove, syncDir) completed since this file system was made. */
  operations(): number;
  /** Whether the power is off (an operation threw `PowerCut`). */
  dead(): boolean;
  /**
   * The disk after a power cut at this moment: a new file system holding only what survived,
   * all of it durable. Deterministic for a given sequence of `random` values.
   */
  crash(random: () => number): PowerCutFileSystem;
};

/** Thrown by an operation attempted after the power went out; the code under test stops there. */
export class PowerCut extends Error {
  constructor(operation: string) {
    super(`power cut before ${operation}`);
    this.name = 'PowerCut';
  }
}

type Inode = { data: Buffer; synced: Buffer; dirty: boolean };
type DirOp = { op: 'create'; name: string; inode: Inode } | { op: 'rename'; from: string; to: string } | { op: 'remove'; name: string };

function enoent(operation: string, name: string): Error {
  return Object.assign(new Error(`ENOENT: no such file, ${operation} '${name}'`), { code: 'ENOENT' });
}

/** A file system whose content (`files`, when given) is all durable. */
export function createPowerCutFileSystem(files: ReadonlyMap<string, Uint8Array> = new Map()): PowerCutFileSystem {
  const entries = new Map<string, Inode>();
  for (const [name, data] of files) {
    const copy = Buffer.from(data);
    entries.set(name, { data: copy, synced: copy, dirty: false });
  }
  let durable = new Map(entries);
  let pending: DirOp[] = [];
  let done = 0;
  let limit = Infinity;
  let off = false;

  /** Every mutating operation passes here first: past the crash point the power is gone. */
  function step(operation: string): void {
    if (!off && done >= limit) off = true;
    if (off) throw new PowerCut(operation);
    done++;
  }
  function alive(operation: string): void {
    if (off) throw new PowerCut(operation);
  }

  const fs: PowerCutFileSystem = {
    read(name) {
      alive(`read ${name}`);
      const inode = entries.get(name);
      return inode ? Buffer.from(inode.data) : null;
    },
    list() {
      alive('list');
      return [...entries.keys()];
    },
    writeFile(name, data) {
      step(`writeFile ${name}`);
      let inode = entries.get(name);
      if (!inode) {
        inode = { data: Buffer.alloc(0), synced: Buffer.alloc(0), dirty: false };
        entries.set(name, inode);
        pending.push({ op: 'create', name, inode });
      }
      inode.data = Buffer.from(data);
      inode.dirty = true;
    },
    fsync(name) {
      step(`fsync ${name}`);
      const inode = entries.get(name);
      if (!inode) throw enoent('fsync', name);
      inode.synced = inode.data;
      inode.dirty = false;
    },
    rename(from, to) {
      step(`rename ${from} ${to}`);
      const inode = entries.get(from);
      if (!inode) throw enoent('rename', from);
      entries.delete(from);
      entries.set(to, inode);
      pending.push({ op: 'rename', from, to });
    },
    remove(name) {
      step(`remove ${name}`);
      if (!entries.delete(name)) return;
      pending.push({ op: 'remove', name });
    },
    syncDir() {
      step('syncDir');
      durable = new Map(entries);
      pending = [];
    },
    crashAfter(n) {
      limit = done + n;
    },
    operations: () => done,
    dead: () => off,
    crash(random) {
      const pick = (n: number) => Math.min(n - 1, Math.floor(random() * n));
      const dir = new Map(durable);
      const applied = pick(pending.length + 1);
      for (const op of pending.slice(0, applied)) {
        if (op.op === 'create') dir.set(op.name, op.inode);
        else if (op.op === 'remove') dir.delete(op.name);
        else {
          const inode = dir.get(op.from);
          if (!inode) continue;
          dir.delete(op.from);
          dir.set(op.to, inode);
        }
      }
      const survived = new Map<Inode, Buffer>();
      const out = new Map<string, Uint8Array>();
      // Sorted, so the random choices do not depend on the order names were made in.
      for (const name of [...dir.keys()].sort()) {
        const inode = dir.get(name)!;
        let data = survived.get(inode);
        if (!data) {
          // Either the write never reached the disk, or some prefix of it did (all of it, with luck).
          data = !inode.dirty ? inode.synced : pick(3) === 0 ? inode.synced : inode.data.subarray(0, pick(inode.data.length + 1));
          survived.set(inode, data);
        }
        out.set(name, data);
      }
      return createPowerCutFileSystem(out);
    },
  };
  return fs;
}
