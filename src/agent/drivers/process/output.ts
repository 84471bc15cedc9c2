import * as fsp from 'node:fs/promises';
import type { LogRead } from '../driver.ts';

/**
 * Where a reader is in a process's output file: the file's inode (the driver rotates the file by
 * renaming it at a restart) and the byte offset of the first unread line.
 */
type OutputCursor = { ino: number; offset: number };

const isOutputCursor = (v: Record<string, unknown> | null): v is OutputCursor =>
  v !== null && Number.isSafeInteger(v.ino) && Number.isSafeInteger(v.offset) && (v.offset as number) >= 0;

/**
 * Reads whole lines after the cursor. When the file was rotated since, the rest of the rotated
 * file comes first (it is found by its inode), then the new file from its start, so no line is
 * skipped or read twice across a rotation.
 */
export async function readOutput(file: string, rotated: string, cursor: Record<string, unknown> | null, maxBytes: number, maxLines = Infinity): Promise<LogRead> {
  const current = await fsp.stat(file).catch(() => null);
  if (!current) return { lines: [], cursor: cursor ?? {} };
  const at: OutputCursor = isOutputCursor(cursor) ? cursor : { ino: current.ino, offset: 0 };
  if (at.ino !== current.ino) {
    const old = await fsp.stat(rotated).catch(() => null);
    if (old && old.ino === at.ino && at.offset < old.size) {
      const read = await readLines(rotated, at.offset, maxBytes, maxLines, true);
      const done = at.offset + read.consumed >= old.size;
      return { lines: read.lines, cursor: done ? { ino: current.ino, offset: 0 } : { ino: at.ino, offset: at.offset + read.consumed } };
    }
    // The file we were reading is gone (rotated twice while the agent was away): go on with the current one.
    return readCurrent(file, { ino: current.ino, offset: 0 }, current.size, maxBytes, maxLines);
  }
  return readCurrent(file, at, current.size, maxBytes, maxLines);
}

async function readCurrent(file: string, at: OutputCursor, size: number, maxBytes: number, maxLines: number): Promise<LogRead> {
  // A file shorter than the cursor was truncated by someone else: start over rather than wait forever.
  const offset = at.offset > size ? 0 : at.offset;
  if (offset >= size) return { lines: [], cursor: { ino: at.ino, offset } };
  const read = await readLines(file, offset, maxBytes, maxLines, false);
  return { lines: read.lines, cursor: { ino: at.ino, offset: offset + read.consumed } };
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
