import { DriftlessError } from '../protocol/errors.ts';
import type { Store } from './store/store.ts';

/**
 * Group commit: writes that arrive while a batch is being written wait for the next one; each
 * batch is one transaction, so thousands of devices reporting at once cost a few fsyncs, not
 * thousands. A write is answered only after its batch committed (durable before acknowledged).
 * The queue is bounded: past `maxQueue` a write is refused at once as `busy`, with a Retry-After,
 * rather than held in memory while the server falls behind.
 */
export type GroupCommit<T, R> = {
  submit(item: T): Promise<R>;
  /** Writes waiting or being written. */
  depth(): number;
};

export type GroupCommitWork<T, R> = {
  /** Decides, before anything of the item is written, whether it is refused (then it alone is). */
  refuse?: (tx: Store, item: T) => Promise<DriftlessError | null>;
  write: (tx: Store, item: T) => Promise<R>;
};

type Pending<T, R> = { item: T; resolve: (result: R) => void; reject: (error: unknown) => void };

export function createGroupCommit<T, R>(
  store: Store,
  work: GroupCommitWork<T, R>,
  opts: { maxBatch?: number; maxQueue?: number; retryAfterMs?: number; random?: () => number } = {},
): GroupCommit<T, R> {
  const maxBatch = opts.maxBatch ?? 1000;
  const maxQueue = opts.maxQueue ?? 20_000;
  const retryAfterMs = opts.retryAfterMs ?? 5_000;
  const random = opts.random ?? Math.random;
  let queue: Pending<T, R>[] = [];
  let inFlight = 0;
  let writing: Promise<void> | null = null;

  async function drain(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      inFlight = batch.length;
      const outcomes = new Map<Pending<T, R>, { ok: true; result: R } | { ok: false; error: unknown }>();
      try {
        await store.transaction(async (tx) => {
          for (const p of batch) {
            const refusal = work.refuse ? await work.refuse(tx, p.item) : null;
            outcomes.set(p, refusal ? { ok: false, error: refusal } : { ok: true, result: await work.write(tx, p.item) });
          }
        });
      } catch (error) {
        // The whole batch rolled back: fail everyone in it rather than guess which write broke it.
        for (const p of batch) p.reject(error);
        continue;
      } finally {
        inFlight = 0;
      }
      for (const p of batch) {
        const outcome = outcomes.get(p)!;
        if (outcome.ok) p.resolve(outcome.result);
        else p.reject(outcome.error);
      }
    }
  }

  return {
    submit(item) {
      if (queue.length >= maxQueue) {
        // Spread the returns, so the refused do not come back together.
        const wait = Math.round(retryAfterMs * (1 + random()));
        return Promise.reject(new DriftlessError('busy', 'the server is busy writing reports; try again later', wait));
      }
      return new Promise<R>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        writing ??= drain().finally(() => {
          writing = null;
        });
      });
    },
    depth: () => queue.length + inFlight,
  };
}
