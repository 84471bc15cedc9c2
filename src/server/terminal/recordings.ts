import { randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { Recording } from '../../protocol/channel.ts';

/**
 * Every terminal and exec session is recorded as an asciicast v2 file (`<dir>/<id>.cast`): a
 * header line, then one `[seconds, "o", text]` line per output chunk and `[seconds, "r", "COLSxROWS"]`
 * per resize. What the operator typed is not recorded apart from its echo: a password typed at
 * a prompt that does not echo stays out of the recording. The header's `driftless` field says
 * who, where and what, so the list needs no database; the audit trail names the recording's id.
 */

export type RecordingStart = {
  kind: 'terminal' | 'exec';
  /** The organization whose device it is: only its operators list and read the recording. */
  tenant: string;
  device: string;
  actor: string;
  cols: number;
  rows: number;
  command?: string[];
  component?: string;
};

export type RecordingWriter = {
  readonly id: string;
  output(data: Buffer): void;
  resize(cols: number, rows: number): void;
  /** Writes what is left and closes the file; resolves once it is on disk. */
  close(exitCode: number | null): Promise<void>;
};

export type Recordings = {
  start(what: RecordingStart): RecordingWriter;
  list(): Promise<Recording[]>;
  /** The whole asciicast text of one recording, or null when there is none by that id. */
  read(id: string): Promise<string | null>;
};

export const RECORDING_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The header line of an asciicast v2 file. */
export function castHeader(what: RecordingStart, startedAtMs: number): string {
  const title = what.kind === 'terminal' ? `terminal on ${what.device}` : `exec on ${what.device}${what.component ? `/${what.component}` : ''}: ${what.command?.join(' ') ?? ''}`;
  const meta = {
    kind: what.kind,
    tenant: what.tenant,
    device: what.device,
    actor: what.actor,
    startedAt: new Date(startedAtMs).toISOString(),
    ...(what.command ? { command: clipped(what.command) } : {}),
    ...(what.component ? { component: what.component } : {}),
  };
  return JSON.stringify({ version: 2, width: what.cols, height: what.rows, timestamp: Math.floor(startedAtMs / 1000), title, env: { TERM: 'xterm-256color' }, driftless: meta });
}

/** A long command is shortened in the header (the header stays one small line); the audit entry keeps it whole. */
function clipped(command: string[], budget = 8 * 1024): string[] {
  const out: string[] = [];
  let left = budget;
  for (const arg of command) {
    if (arg.length > left) {
      out.push(`${arg.slice(0, left)}…`);
      break;
    }
    out.push(arg);
    left -= arg.length;
  }
  return out;
}

/** One event line: seconds since the start (microsecond precision), its type and text. */
export function castEvent(elapsedMs: number, type: 'o' | 'i' | 'r', text: string): string {
  return JSON.stringify([Math.round(elapsedMs * 1000) / 1e6, type, text]);
}

/** Reads the metadata back from a header line; null when it is not one of ours. */
export function parseCastHeader(id: string, line: string, bytes: number): Recording | null {
  try {
    const header = JSON.parse(line) as { version?: unknown; driftless?: Partial<Recording> };
    const meta = header.driftless;
    if (header.version !== 2 || !meta || (meta.kind !== 'terminal' && meta.kind !== 'exec')) return null;
    return {
      id,
      kind: meta.kind,
      tenant: String(meta.tenant),
      device: String(meta.device),
      actor: String(meta.actor),
      startedAt: String(meta.startedAt),
      ...(Array.isArray(meta.command) ? { command: meta.command.map(String) } : {}),
      ...(typeof meta.component === 'string' ? { component: meta.component } : {}),
      bytes,
    };
  } catch {
    return null;
  }
}

/**
 * One session's recording as lines of asciicast text: its header at once, then its output (a
 * character split across chunks written whole) and resizes; `end` runs once, after the last line.
 * Where the lines go (a file, the database) is the caller's.
 */
export function castRecorder(id: string, what: RecordingStart, now: () => number, sink: { line(text: string): void; end(): Promise<void> }): RecordingWriter {
  const startedAtMs = now();
  const decoder = new StringDecoder('utf8');
  let closed = false;
  const line = (text: string) => {
    if (!closed) sink.line(`${text}\n`);
  };
  line(castHeader(what, startedAtMs));
  return {
    id,
    output(data) {
      const text = decoder.write(data);
      if (text) line(castEvent(now() - startedAtMs, 'o', text));
    },
    resize(cols, rows) {
      line(castEvent(now() - startedAtMs, 'r', `${cols}x${rows}`));
    },
    async close() {
      if (closed) return;
      const rest = decoder.end();
      if (rest) line(castEvent(now() - startedAtMs, 'o', rest));
      closed = true;
      await sink.end();
    },
  };
}

export function createRecordings(dir: string, now: () => number = Date.now): Recordings {
  return {
    start(what) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const id = randomUUID();
      const file = createWriteStream(join(dir, `${id}.cast`), { flags: 'wx', mode: 0o600 });
      return castRecorder(id, what, now, {
        line: (text) => void file.write(text),
        end: () => new Promise<void>((resolve, reject) => file.end((error?: Error | null) => (error ? reject(error) : resolve()))),
      });
    },

    async list() {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        return [];
      }
      const found: Recording[] = [];
      for (const name of names) {
        const id = name.replace(/\.cast$/, '');
        if (!name.endsWith('.cast') || !RECORDING_ID.test(id)) continue;
        const recording = await readHeader(join(dir, name), id);
        if (recording) found.push(recording);
      }
      return found.sort((a, b) => b.startedAt.localeCompare(a.startedAt));
    },

    async read(id) {
      if (!RECORDING_ID.test(id)) return null;
      try {
        return await readFile(join(dir, `${id}.cast`), 'utf8');
      } catch {
        return null;
      }
    },
  };
}

async function readHeader(path: string, id: string): Promise<Recording | null> {
  const handle = await open(path, 'r').catch(() => null);
  if (!handle) return null;
  try {
    const buffer = Buffer.alloc(64 * 1024);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    const text = buffer.subarray(0, bytesRead).toString('utf8');
    const end = text.indexOf('\n');
    const size = (await stat(path)).size;
    return parseCastHeader(id, end < 0 ? text : text.slice(0, end), size);
  } finally {
    await handle.close();
  }
}
