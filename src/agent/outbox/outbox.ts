import type { DeviceEvent } from '../../protocol/messages.ts';
import { readJson, writeJson, type Storage } from '../storage/storage.ts';

type OutboxFile = { nextSeq: number; pending: DeviceEvent[] };
const FILE = 'outbox.json';
const isOutbox = (v: unknown): v is OutboxFile =>
  v !== null && typeof v === 'object' && typeof (v as OutboxFile).nextSeq === 'number' && Array.isArray((v as OutboxFile).pending);

/**
 * Events wait here, durably and numbered, until the server acknowledges them. A resend after a
 * lost answer carries the same numbers, so the server stores each event once.
 */
export type Outbox = {
  add(event: Omit<DeviceEvent, 'seq'>): DeviceEvent;
  pending(limit: number): DeviceEvent[];
  acknowledge(seq: number): void;
};

export function createOutbox(storage: Storage, maxPending = 10_000): Outbox {
  let state: OutboxFile = readJson(storage, FILE, isOutbox) ?? { nextSeq: 1, pending: [] };
  const save = (next: OutboxFile) => {
    writeJson(storage, FILE, next);
    state = next;
  };
  return {
    add(event) {
      const full: DeviceEvent = { ...event, seq: state.nextSeq };
      save({ nextSeq: state.nextSeq + 1, pending: [...state.pending, full].slice(-maxPending) });
      return full;
    },
    pending: (limit) => state.pending.slice(0, limit),
    acknowledge(seq) {
      if (!state.pending.some((e) => e.seq <= seq)) return;
      save({ nextSeq: state.nextSeq, pending: state.pending.filter((e) => e.seq > seq) });
    },
  };
}
