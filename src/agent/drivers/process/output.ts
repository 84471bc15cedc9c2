import * as fsp from 'node:fs/promises';
import type { LogRead } from '../driver.ts';

/**
 * Where a reader is in a process's output file: which file (its inode, and the first bytes it
 * began with: a freed inode can be handed to the next file, but that file begins with another
 * start marker) and the byte offset of the first unread line. The driver rotates the file by
 * renaming it at a restart, and empties it in place once it was read to its end (emptyIfRead).
 */
type OutputCursor = { ino: number; head?: string; offset: number };

/** How many leading bytes identify a file beside its inode (the driver's start marker has a timestamp in them). */
const HEAD_BYTES = 96;

const isOutputCursor = (v: Record<string, unknown> | null): v is OutputCursor =>
  v !== null && Number.isSafeInteger(v.ino) && (v.head === undefined || typeof v.head === 'string') && Number.isSafeInteger(v.offset) && (v.offset as number) >= 0;

type FileId = { ino: number; head: Buffer; size: number };

async function identify(path: string): Promise<FileId | null> {
  const handle = await fsp.open(path, 'r').catch(() => null);
  if (!handle) return null;
  try {
    const { ino, size } = await handle.stat();
    const head = Buffer.alloc(Math.min(HEAD_BYTES, size));
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    return { ino, head: head.subarray(0, bytesRead), size };
  } finally {
    await handle.close();
  }
}

/** The file the cursor was made on: same inode, and its first bytes begin as the cursor remembers them. */
function isSame(id: FileId, at: OutputCursor): boolean {
  // A cursor from before heads were kept has none: the inode alone decides, as it did then.
  const head = Buffer.from(at.head ?? '', 'base64');
  return id.ino === at.ino && id.head.length >= head.length && id.head.subarray(0, head.length).equals(head);
}

const cursorOn = (id: FileId, offset: number): OutputCursor => ({ ino: id.ino, head: id.head.toString('base64'), offset });

/**
 * Reads whole lines after the cursor. When the file was rotated since, the rest of the rotated
 * file comes first (found by its identity), then the new file from its start, so no line is
 * skipped or read twice across a rotation.
 */
export async function readOutput(file: string, rotated: string, cursor: Record<string, unknown> | null, maxBytes: number, maxLines = Infinity): Promise<LogRead> {
  const current = await identify(file);
  if (!current) return { lines: [], cursor: cursor ?? {} };
  const at = isOutputCursor(cursor) ? cursor : null;
  if (at && !isSame(current, at)) {
    const old = await identify(rotated);
    if (old && isSame(old, at) && at.offset < old.size) {
      const read = await readLines(rotated, at.offset, maxBytes, maxLines, true);
      const done = at.offset + read.consumed >= old.size;
      return { lines: read.lines, cursor: done ? cursorOn(current, 0) : { ...at, offset: at.offset + read.consumed } };
    }
    // The file we were reading is gone (rotated twice while the agent was away): go on with the current one.
    return readCurrent(file, current, 0, maxBytes, maxLines);
  }
  return readCurrent(file, current, at?.offset ?? 0, maxBytes, maxLines);
}

async function readCurrent(file: string, id: FileId, from: number, maxBytes: number, maxLines: number): Promise<LogRead> {
  // A file shorter than the cursor was truncated by someone else: start over rather than wait forever.
  const offset = from > id.size ? 0 : from;
  if (offset >= id.size) return { lines: [], cursor: cursorOn(id, offset) };
  const read = await readLines(file, offset, maxBytes, maxLines, false);
  return { lines: read.lines, cursor: cursorOn(id, offset + read.consumed) };
}

/**
 * Whole lines from `offset`. A line without its newline yet is left for the next read, unless the
 * file is finished (rotated) or the line alone exceeds the budget (then it is cut there).
 */
async function readLines(file: string, offset: number, maxBytes: number, maxLines: number, finished: boolean): Promise<{ lines: string[]; consumed: number }> {
  const handle = await fsp.open(file, 'r');
  try {
    const buffer = Buffer.alloc(maxBytes);
    const { bytesRead } = await handle.read(buffer, 0, maxBytes, offset);
    const data = buffer.subarray(0, bytesRead);
    let end = data.lastIndexOf(0x0a) + 1;
    // Past the line budget, stop after the maxLines-th newline.
    for (let i = 0, seen = 0; i < end && Number.isFinite(maxLines); i++) {
      if (data[i] === 0x0a && ++seen === maxLines) {
        end = i + 1;
        break;
      }
    }
    if (end === 0 && (finished || bytesRead === maxBytes)) end = bytesRead;
    if (end === 0) return { lines: [], consumed: 0 };
    const text = data.subarray(0, end).toString('utf8');
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    return { lines, consumed: end };
  } finally {
    await handle.close();
  }
}

/**
 * Empties the output file once every byte of it was read and it has grown past `limit`: a process
 * that runs for months must not fill the device's disk, and rotation by rename at a restart is not
 * enough (a running process goes on writing into the file it has open, whatever its name). The
 * process's descriptor appends, so its next line lands at the start of the emptied file and the
 * cursor goes on from 0. A line written between the size check on the open file and the truncation
 * just after it would be lost: a window of microseconds, against a disk filled for sure.
 */
export async function emptyIfRead(file: string, read: LogRead, limit: number): Promise<LogRead> {
  const at = isOutputCursor(read.cursor) ? read.cursor : null;
  if (!at || at.offset <= limit) return read;
  const handle = await fsp.open(file, 'r+').catch(() => null);
  if (!handle) return read;
  try {
    const { ino, size } = await handle.stat();
    if (ino !== at.ino || size !== at.offset) return read;
    await handle.truncate(0);
    return { lines: read.lines, cursor: { ino, head: '', offset: 0 } satisfies OutputCursor };
  } finally {
    await handle.close();
  }
}
