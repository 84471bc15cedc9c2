import { DriftlessError } from '../protocol/errors.ts';
import type { StatusReport, TelemetryBatch } from '../protocol/messages.ts';
import { createGroupCommit, type GroupCommit } from './group-commit.ts';
import type { Store, TelemetryMark } from './store/store.ts';

/** Status reports and telemetry batches are written in group commits; a device no longer accepted is refused alone. */
export type StatusWriter = { submit(device: string, report: StatusReport, receivedAt: string): Promise<void>; depth(): number };
export type TelemetryWriter = { submit(device: string, batch: TelemetryBatch, receivedAt: string): Promise<TelemetryMark>; depth(): number };

type Limits = { maxBatch?: number; maxQueue?: number };

async function refuseUnaccepted(tx: Store, item: { device: string }): Promise<DriftlessError | null> {
  const record = await tx.getDevice(item.device);
  return !record || record.status !== 'accepted' ? new DriftlessError('forbidden', `device "${item.device}" is not accepted`) : null;
}

export function createStatusWriter(store: Store, limits: Limits = {}): StatusWriter {
  type Item = { device: string; report: StatusReport; receivedAt: string };
  const commit: GroupCommit<Item, void> = createGroupCommit<Item, void>(
    store,
    {
      refuse: refuseUnaccepted,
      async write(tx, { device, report, receivedAt }) {
        await tx.recordStatus(device, report.generation, report.reportedAt, receivedAt, report.components);
        await tx.recordEvents(device, receivedAt, report.events);
        if (report.facts) await tx.updateDevice(device, { facts: report.facts });
      },
    },
    limits,
  );
  return { submit: (device, report, receivedAt) => commit.submit({ device, report, receivedAt }), depth: commit.depth };
}

export function createTelemetryWriter(store: Store, limits: Limits = {}): TelemetryWriter {
  type Item = { device: string; batch: TelemetryBatch; receivedAt: string };
  const commit: GroupCommit<Item, TelemetryMark> = createGroupCommit<Item, TelemetryMark>(
    store,
    { refuse: refuseUnaccepted, write: (tx, { device, batch, receivedAt }) => tx.recordTelemetry(device, receivedAt, batch.records, batch.dropped) },
    limits,
  );
  return { submit: (device, batch, receivedAt) => commit.submit({ device, batch, receivedAt }), depth: commit.depth };
}
