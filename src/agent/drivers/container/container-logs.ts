import type { LogRead } from '../driver.ts';

/**
 * Reading a container's output through the Engine API's logs endpoint, which has no offsets: only
 * `since` (whole seconds here, to be safe across engines) and a timestamp on every line (Docker's
 * to the nanosecond; Podman's compat API, before December 2025, to the whole second). The cursor
 * is the container's id, the timestamp of the last line read and how many lines carried exactly
 * that timestamp, so a read that starts again at that second skips precisely what was read.
 */
export type ContainerLogCursor = { id: string; sec: number; nanos: number; skip: number };

const isCursor = (v: Record<string, unknown> | null): v is ContainerLogCursor =>
  v !== null && typeof v.id === 'string' && Number.isSafeInteger(v.sec) && Number.isSafeInteger(v.nanos) && Number.isSafeInteger(v.skip);

/**
 * The `since` to ask the engine for (0: from the start, for a new container or no cursor). One
 * second before the cursor's: Docker keeps lines at or after `since`, but Podman only lines strictly
 * after it, which would leave out a line logged at exactly .000000000 of the cursor's second and
 * make the skip count skip an unread line instead. The extra second is dropped by its timestamps.
 */
export function sinceOf(id: string, cursor: Record<string, unknown> | null): number {
  return isCursor(cursor) && cursor.id === id ? Math.max(0, cursor.sec - 1) : 0;
}

/**
 * The frames of a non-TTY log stream: an 8-byte header (stream, 0, 0, 0, length big-endian) per
 * frame; stdout and stderr interleave as the engine recorded them. A torn last frame is dropped.
 * Each frame is one line with its own timestamp: the engine leaves the newline off a partial line
 * (output the container had not ended yet, or a piece of an over-long line), so the frame ends the
 * line here. Glued to the next frame, it would hide that frame's line and throw the skip count off.
 */
export function demuxLogStream(data: Buffer): string {
  let out = '';
  let offset = 0;
  while (offset + 8 <= data.length) {
    const length = data.readUInt32BE(offset + 4);
    if (offset + 8 + length > data.length) break;
    const payload = data.toString('utf8', offset + 8, offset + 8 + length);
    out += payload.endsWith('\n') ? payload : `${payload}\n`;
    offset += 8 + length;
  }
  return out;
}

/** "2026-11-21T08:00:00.123456789Z" (trailing zeros may be trimmed) → seconds and nanoseconds. */
export function parseLogTime(text: string): { sec: number; nanos: number } | null {
  const match = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(text);
  if (!match) return null;
  const ms = Date.parse(`${match[1]}${match[3]}`);
  if (Number.isNaN(ms)) return null;
  return { sec: Math.floor(ms / 1000), nanos: Number((match[2] ?? '').padEnd(9, '0')) };
}

/** The lines after the cursor in output read with `timestamps` since `sinceOf(...)`, within the budgets. */
export function linesAfter(id: string, text: string, cursor: Record<string, unknown> | null, maxBytes: number, maxLines: number): LogRead {
  const from: ContainerLogCursor = isCursor(cursor) && cursor.id === id ? cursor : { id, sec: 0, nanos: 0, skip: 0 };
  const compare = (t: { sec: number; nanos: number }, c: { sec: number; nanos: number }) => t.sec - c.sec || t.nanos - c.nanos;
  const lines: string[] = [];
  let bytes = 0;
  let skipLeft = from.skip;
  let last: ContainerLogCursor = from;
  const rows = text.split('\n');
  if (rows.at(-1) === '') rows.pop();
  for (const row of rows) {
    const space = row.indexOf(' ');
    const time = parseLogTime(space < 0 ? row : row.slice(0, space));
    if (!time) continue;
    const order = compare(time, from);
    // Before the cursor, or one of the lines with its exact timestamp that were read already.
    if (order < 0) continue;
    if (order === 0 && skipLeft > 0) {
      skipLeft--;
      continue;
    }
    const line = space < 0 ? '' : row.slice(space + 1);
    if (lines.length > 0 && (lines.length >= maxLines || bytes + line.length > maxBytes)) break;
    lines.push(line);
    bytes += line.length + 1;
    last = compare(time, last) === 0 ? { ...last, skip: last.skip + 1 } : { id, sec: time.sec, nanos: time.nanos, skip: 1 };
  }
  return { lines, cursor: last };
}
