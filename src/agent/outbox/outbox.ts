import type { TelemetryRecord } from '../../protocol/messages.ts';
import { readJson, writeJson, type Storage } from '../storage/storage.ts';

/** A record before the outbox numbers it. */
export type NewRecord = TelemetryRecord extends infer R ? (R extends { seq: number } ? Omit<R, 'seq'> : never) : never;

/** Where a source (one component's output, say) has been read up to; the source decides the shape. */
export type Cursor = Record<string, unknown>;

/**
 * The device's store-and-forward buffer for telemetry. Records are numbered in one sequence and
 * become durable together with the cursors of the sources they were read from, in one chunk
 * file per `commit()`: after a crash the agent resumes reading exactly where the last committed
 * chunk ends, so a line is neither lost nor read twice. Chunks leave once the server has
 * acknowledged them. The outbox never grows past its quota: when full it drops its oldest chunks
 * and counts the records it dropped, a running total reported to the server.
 */
export type Outbox = {
  add(record: NewRecord): void;
  cursor(source: string): Cursor | undefined;
  setCursor(source: string, cursor: Cursor): void;
  /** Makes the added records and cursors durable (one chunk). Nothing is uploaded before it. */
  commit(): void;
  /** The oldest committed records not yet acknowledged, in order, within the limits (at least one). */
  batch(maxRecords: number, maxBytes: number): TelemetryRecord[];
  /** The server stored everything up to `seq`. */
  acknowledge(seq: number): void;
  /** Gives up on the records up to `seq` (the server refuses them for good): they count as dropped. */
  discard(seq: number): void;
  /** Records dropped for lack of space since the device began. */
  dropped(): number;
  stats(): { pendingRecords: number; bytes: number; chunks: number; quotaBytes: number };
  /** How large one commit should be at most, so that several fit the quota (callers size their reads by it). */
  chunkBytes: number;
};

export const DEFAULT_OUTBOX_QUOTA = 64 * 1024 * 1024;
/** Smaller quotas are refused: a few chunks must fit. */
export const MIN_OUTBOX_QUOTA = 64 * 1024;

/** `epoch` numbers commits: the cursors of the newest commit win, whether they sit in a chunk or in the state document. */
type OutboxState = { ackedSeq: number; skippedThrough: number; nextSeq: number; dropped: number; epoch: number; cursors: Record<string, Cursor> };
type Chunk = { first: number; last: number; epoch: number; cursors: Record<string, Cursor>; records: TelemetryRecord[] };
type ChunkIndex = { name: string; first: number; last: number; bytes: number };

const STATE = 'outbox-state.json';
const CHUNK_PREFIX = 'outbox-chunk-';
const chunkName = (first: number) => `${CHUNK_PREFIX}${String(first).padStart(16, '0')}.json`;

const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isState = (v: unknown): v is OutboxState =>
  isObject(v) && isCount(v.ackedSeq) && isCount(v.skippedThrough) && isCount(v.nextSeq) && isCount(v.dropped) && isCount(v.epoch) && isObject(v.cursors);
const isChunk = (v: unknown): v is Chunk =>
  isObject(v) && isCount(v.first) && isCount(v.last) && isCount(v.epoch) && isObject(v.cursors) && Array.isArray(v.records) && v.records.length === (v.last as number) - (v.first as number) + 1;

export function createOutbox(storage: Storage, opts: { quotaBytes?: number } = {}): Outbox {
  const quotaBytes = Math.max(MIN_OUTBOX_QUOTA, opts.quotaBytes ?? DEFAULT_OUTBOX_QUOTA);
  let state: OutboxState = readJson(storage, STATE, isState) ?? { ackedSeq: 0, skippedThrough: 0, nextSeq: 1, dropped: 0, epoch: 0, cursors: {} };
  const chunks: ChunkIndex[] = [];
  let committedCursors: Record<string, Cursor> = state.cursors;
  let epoch = state.epoch;

  // Reopen: every chunk that reads back whole is kept, in sequence order; the newest carries the cursors.
  for (const name of storage.list(CHUNK_PREFIX)) {
    const text = storage.read(name);
    const chunk = text === null ? null : parseChunk(text);
    if (!chunk || chunk.last <= floor()) {
      storage.remove(name);
      continue;
    }
    chunks.push({ name, first: chunk.first, last: chunk.last, bytes: Buffer.byteLength(text!) });
    // On a tie the chunk wins: a commit that made room saved the state (old cursors) under its own epoch before writing its chunk.
    if (chunk.epoch >= epoch) {
      epoch = chunk.epoch;
      committedCursors = chunk.cursors;
    }
  }
  chunks.sort((a, b) => a.first - b.first);
  let nextSeq = Math.max(state.nextSeq, floor() + 1, (chunks.at(-1)?.last ?? 0) + 1);
  let buffer: TelemetryRecord[] = [];
  let cursors: Record<string, Cursor> = { ...committedCursors };
  let cursorsChanged = false;

  function floor(): number {
    return Math.max(state.ackedSeq, state.skippedThrough);
  }

  function saveState(next: Partial<OutboxState>): void {
    const candidate = { ...state, ...next, nextSeq, epoch, cursors: committedCursors };
    writeJson(storage, STATE, candidate);
    state = candidate;
  }

  function pendingIn(chunk: ChunkIndex): number {
    return Math.max(0, chunk.last - Math.max(chunk.first - 1, floor()));
  }

  /** Makes room for `incoming` bytes, oldest chunks first, so the quota holds at every moment, not only after a write. */
  function makeRoom(incoming: number): void {
    let total = chunks.reduce((sum, c) => sum + c.bytes, 0);
    while (total + incoming > quotaBytes && chunks.length > 0) {
      const oldest = chunks[0]!;
      // The count is durable before the records go, so a crash in between never under-reports.
      saveState({ dropped: state.dropped + pendingIn(oldest), skippedThrough: Math.max(state.skippedThrough, oldest.last) });
      storage.remove(oldest.name);
      chunks.shift();
      total -= oldest.bytes;
    }
  }

  return {
    add(record) {
      buffer.push({ ...record, seq: nextSeq++ } as TelemetryRecord);
    },
    cursor: (source) => cursors[source],
    setCursor(source, cursor) {
      cursors = { ...cursors, [source]: cursor };
      cursorsChanged = true;
    },
    commit() {
      if (buffer.length === 0 && !cursorsChanged) return;
      epoch++;
      if (buffer.length === 0) {
        // Only cursors moved (say, a source was read to its end): they go into the state document.
        committedCursors = cursors;
        saveState({});
      } else {
        const chunk: Chunk = { first: buffer[0]!.seq, last: buffer.at(-1)!.seq, epoch, cursors, records: buffer };
        const text = `${JSON.stringify(chunk)}\n`;
        const name = chunkName(chunk.first);
        makeRoom(Buffer.byteLength(text));
        storage.write(name, text);
        chunks.push({ name, first: chunk.first, last: chunk.last, bytes: Buffer.byteLength(text) });
        committedCursors = cursors;
      }
      buffer = [];
      cursorsChanged = false;
    },
    batch(maxRecords, maxBytes) {
      const out: TelemetryRecord[] = [];
      let bytes = 0;
      for (const index of chunks) {
        const text = storage.read(index.name);
        const chunk = text === null ? null : parseChunk(text);
        if (!chunk) continue;
        for (const record of chunk.records) {
          if (record.seq <= floor()) continue;
          const size = JSON.stringify(record).length;
          if (out.length > 0 && (out.length >= maxRecords || bytes + size > maxBytes)) return out;
          out.push(record);
          bytes += size;
        }
      }
      return out;
    },
    acknowledge(seq) {
      if (seq <= state.ackedSeq) return;
      // The server has records numbered past anything here only if this device lost its outbox: never reuse those numbers.
      nextSeq = Math.max(nextSeq, seq + 1);
      saveState({ ackedSeq: seq });
      while (chunks.length > 0 && chunks[0]!.last <= seq) storage.remove(chunks.shift()!.name);
    },
    discard(seq) {
      if (seq <= floor()) return;
      const count = chunks.reduce((sum, c) => sum + Math.max(0, Math.min(c.last, seq) - Math.max(c.first - 1, floor())), 0);
      saveState({ dropped: state.dropped + count, skippedThrough: seq });
      while (chunks.length > 0 && chunks[0]!.last <= seq) storage.remove(chunks.shift()!.name);
    },
    dropped: () => state.dropped,
    chunkBytes: Math.min(256 * 1024, Math.floor(quotaBytes / 8)),
    stats: () => ({
      pendingRecords: chunks.reduce((sum, c) => sum + pendingIn(c), 0),
      bytes: chunks.reduce((sum, c) => sum + c.bytes, 0),
      chunks: chunks.length,
      quotaBytes,
    }),
  };
}

function parseChunk(text: string): Chunk | null {
  try {
    const value: unknown = JSON.parse(text);
    return isChunk(value) ? value : null;
  } catch {
    return null;
  }
}
