import { DriftlessError } from '../../protocol/errors.ts';
import type { TelemetryBatch, TelemetryRecord } from '../../protocol/messages.ts';
import type { Instance, RuntimeDriver } from '../drivers/driver.ts';
import type { ContactGate } from '../sync/backoff.ts';
import type { Outbox } from './outbox.ts';

/** One instance whose output the agent collects. */
export type LogSource = { key: string; component: string; driver: RuntimeDriver };

export type TelemetryDeps = {
  outbox: Outbox;
  upload: (batch: TelemetryBatch) => Promise<{ ackedSeq: number }>;
  gate: ContactGate;
  now: () => number;
  log: (message: string) => void;
  /** Host figures (cpu_percent, memory_used_bytes, …); null where the device has none to give (a simulated one). */
  hostMetrics: (() => Record<string, number>) | null;
  metricsEveryMs?: number;
};

export type Telemetry = {
  /** Reads new output of every source into the outbox (durable on return). */
  collect(sources: readonly LogSource[]): Promise<void>;
  /** Records host and component metrics when they are due. */
  sample(instances: readonly Instance[]): void;
  /** Uploads committed records until none is left, the server refuses, or the link fails (then backs off). */
  upload(): Promise<void>;
  /** Whether records wait for upload. */
  pending(): boolean;
};

/** Reads per source and pass: enough to catch up with a chatty component, bounded so one cannot starve the rest. */
const READS_PER_SOURCE = 256;
/** What one record costs in a chunk beside its line (number, time, kind, component, JSON punctuation). */
const RECORD_OVERHEAD = 100;
const BATCH_RECORDS = 2000;
const BATCH_BYTES = 512 * 1024;
const MAX_LINE = 8192;
/** Answers that mean the server will never take this batch as it is (as opposed to "not now"). */
const REFUSED = new Set(['invalid-input', 'payload-too-large']);

export function createTelemetry(deps: TelemetryDeps): Telemetry {
  const { outbox } = deps;
  // Every five minutes by default: an idle device's whole telemetry then stays within a few bytes a second.
  const metricsEveryMs = deps.metricsEveryMs ?? 300_000;
  let lastSampleMs = -Infinity;
  let reportedDropped = -1;
  let batchRecords = BATCH_RECORDS;
  const at = () => new Date(deps.now()).toISOString();

  return {
    async collect(sources) {
      for (const source of sources) {
        if (!source.driver.readLogs) continue;
        const name = `log:${source.key}`;
        for (let round = 0; round < READS_PER_SOURCE; round++) {
          let read;
          try {
            // Half the chunk for the lines' text, half for their records' overhead: one read fits one chunk.
            const budget = Math.floor(outbox.chunkBytes / 2);
            read = await source.driver.readLogs(source.key, outbox.cursor(name) ?? null, budget, Math.max(1, Math.floor(budget / RECORD_OVERHEAD)));
          } catch (error) {
            deps.log(`output of ${source.key} not read: ${(error as Error).message}`);
            break;
          }
          const stamp = at();
          for (const line of read.lines) outbox.add({ kind: 'log', at: stamp, component: source.component, line: line.slice(0, MAX_LINE) });
          outbox.setCursor(name, read.cursor);
          // One chunk per read: the lines and the position after them become durable together.
          outbox.commit();
          if (read.lines.length === 0) break;
        }
      }
    },

    sample(instances) {
      if (deps.now() - lastSampleMs < metricsEveryMs) return;
      lastSampleMs = deps.now();
      const stamp = at();
      for (const [name, value] of Object.entries(deps.hostMetrics?.() ?? {})) {
        if (Number.isFinite(value)) outbox.add({ kind: 'metric', at: stamp, name, value });
      }
      for (const instance of instances) {
        outbox.add({ kind: 'metric', at: stamp, component: instance.component, name: 'up', value: instance.running ? 1 : 0 });
        if (instance.restarts !== undefined) outbox.add({ kind: 'metric', at: stamp, component: instance.component, name: 'restarts', value: instance.restarts });
      }
      outbox.commit();
    },

    async upload() {
      for (;;) {
        if (deps.gate.waitMs(deps.now()) > 0) return;
        const records: TelemetryRecord[] = outbox.batch(batchRecords, BATCH_BYTES);
        const dropped = outbox.dropped();
        if (records.length === 0 && dropped === reportedDropped) return;
        try {
          const ack = await deps.upload({ records, dropped });
          deps.gate.succeeded();
          outbox.acknowledge(ack.ackedSeq);
          reportedDropped = dropped;
          batchRecords = BATCH_RECORDS;
          // The server stored less than it was sent: try again next pass rather than resend in a tight loop.
          if (records.length > 0 && ack.ackedSeq < records.at(-1)!.seq) return;
        } catch (error) {
          if (deps.gate.failed(error, deps.now())) return;
          deps.log(`telemetry not uploaded: ${(error as Error).message}`);
          if (!(error instanceof DriftlessError) || !REFUSED.has(error.code) || records.length === 0) return;
          // Refused for good: narrow down to the record the server will not take, give that one up (counted as
          // dropped, so the server hears of it), and carry on with the rest instead of blocking behind it forever.
          if (records.length > 1) batchRecords = Math.max(1, Math.floor(records.length / 2));
          else outbox.discard(records[0]!.seq);
        }
      }
    },

    pending: () => outbox.stats().pendingRecords > 0 || outbox.dropped() !== reportedDropped,
  };
}
