import { DriftlessError } from '../protocol/errors.ts';
import type { StatusReport } from '../protocol/messages.ts';
import type { Store } from './store/store.ts';

/**
 * Group commit for status reports. Reports that arrive while a batch is being written wait for
 * the next one; each batch is one transaction, so thousands of devices reporting at once cost a
 * few fsyncs, not thousands. A report is acknowledged only after its batch committed: durable
 * before acknowledged, as always. A report from a device that is no longer accepted is refused alone.
 */
export type StatusWriter = { submit(device: string, report: StatusReport, receivedAt: string): Promise<void> };

type Pending = { device: string; report: StatusReport; receivedAt: string; resolve: () => void; reject: (error: unknown) => void };

export function createStatusWriter(store: Store, maxBatch = 1000): StatusWriter {
  let queue: Pending[] = [];
  let writing: Promise<void> | null = null;

  async function writeOne(tx: Store, p: Pending): Promise<void> {
    await tx.recordStatus(p.device, p.report.generation, p.report.reportedAt, p.receivedAt, p.report.components);
    await tx.recordEvents(p.device, p.receivedAt, p.report.events);
    if (p.report.facts) await tx.updateDevice(p.device, { facts: p.report.facts });
  }

  async function drain(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      const refused = new Map<Pending, unknown>();
      try {
        await store.transaction(async (tx) => {
          for (const p of batch) {
            // Refusals are decided before anything of that report is written, so skipping it leaves nothing half-done.
            const record = await tx.getDevice(p.device);
            if (!record || record.status !== 'accepted') {
              refused.set(p, new DriftlessError('forbidden', `device "${p.device}" is not accepted`));
              continue;
            }
            await writeOne(tx, p);
          }
        });
      } catch (error) {
        // The whole batch rolled back: fail everyone in it rather than guess which report broke it.
        for (const p of batch) p.reject(error);
        continue;
      }
      for (const p of batch) {
        const why = refused.get(p);
        if (why) p.reject(why);
        else p.resolve();
      }
    }
  }

  return {
    submit(device, report, receivedAt) {
      return new Promise<void>((resolve, reject) => {
        queue.push({ device, report, receivedAt, resolve, reject });
        writing ??= drain().finally(() => {
          writing = null;
        });
      });
    },
  };
}
