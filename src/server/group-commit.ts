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

  type Outcome = { ok: true; result: R } | { ok: false; error: unknown };

  /** Writes the items in one transaction; what each got, once it committed. */
  async function writeTogether(batch: readonly Pending<T, R>[]): Promise<Map<Pending<T, R>, Outcome>> {
    const outcomes = new Map<Pending<T, R>, Outcome>();
    await store.transaction(async (tx) => {
      for (const p of batch) {
        const refusal = work.refuse ? await work.refuse(tx, p.item) : null;
        outcomes.set(p, refusal ? { ok: false, error: refusal } : { ok: true, result: await work.write(tx, p.item) });
      }
    });
    return outcomes;
  }

  function settle(outcomes: Map<Pending<T, R>, Outcome>): void {
    for (const [p, outcome] of outcomes) {
      if (outcome.ok) p.resolve(outcome.result);
      else p.reject(outcome.error);
    }
  }

  async function drain(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      inFlight = batch.length;
      try {
        try {
          settle(await writeTogether(batch));
        } catch (error) {
          if (batch.length === 1 || databaseUnavailable(error)) {
            for (const p of batch) p.reject(error);
            continue;
          }
          // The batch rolled back. Each write is tried again on its own, so one that cannot be
          // written (whatever it holds) fails alone instead of failing everyone batched with it,
          // every time they are sent again together.
          for (const p of batch) {
            try {
              settle(await writeTogether([p]));
            } catch (alone) {
              p.reject(alone);
            }
          }
        }
      } finally {
        inFlight = 0;
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

/**
 * The database itself cannot be reached (down, restarting, the link cut): trying each write alone
 * would only fail each again, slowly. Node's socket errors, PostgreSQL's connection exceptions
 * (class 08) and shutdowns (57P0x), and pg's pool giving up.
 */
export function databaseUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && (/^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH)$/.test(code) || /^08|^57P0/.test(code))) return true;
  return error instanceof Error && /Connection terminated|timeout exceeded when trying to connect/.test(error.message);
}
