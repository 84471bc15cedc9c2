/**
 * The level-triggered loop: one pass at a time; every trigger (timer, hint, manual) lands on one
 * channel; a trigger during a pass makes one more pass after it. A failed pass is not swallowed:
 * it is reported and retried with exponential back-off.
 */
export type Loop = {
  /** Ask for a pass as soon as possible. */
  trigger(): void;
  /** Resolves when the loop has stopped after the signal aborted. */
  done: Promise<void>;
};

export function startLoop(opts: {
  pass: (signal: AbortSignal) => Promise<void>;
  intervalMs: () => number;
  signal: AbortSignal;
  onError: (error: unknown, retryInMs: number) => void;
  backoff?: { minMs: number; maxMs: number };
}): Loop {
  const backoff = opts.backoff ?? { minMs: 1_000, maxMs: 60_000 };
  let wake: (() => void) | null = null;
  let pending = true;
  const trigger = () => {
    pending = true;
    wake?.();
  };
  opts.signal.addEventListener('abort', trigger, { once: true });

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (pending || opts.signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = null;
        resolve();
      }
      wake = done;
    });

  const done = (async () => {
    let failures = 0;
    while (!opts.signal.aborted) {
      pending = false;
      try {
        await opts.pass(opts.signal);
        failures = 0;
        await sleep(opts.intervalMs());
      } catch (error) {
        if (opts.signal.aborted) break;
        failures++;
        const delay = Math.min(backoff.maxMs, backoff.minMs * 2 ** (failures - 1));
        opts.onError(error, delay);
        pending = false;
        await sleep(delay);
      }
    }
  })();
  return { trigger, done };
}
