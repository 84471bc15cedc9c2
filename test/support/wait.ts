import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polling for a condition instead of sleeping or timing: end-to-end tests never assert on elapsed
 * time. On timeout the error says what was awaited and the last state observed, so a red run
 * explains itself without a rerun.
 */
export type WaitOptions = {
  /** Generous by default: a loaded CI machine is slow, and waiting longer costs nothing when green. */
  timeoutMs?: number;
  intervalMs?: number;
  /** More context for the failure message (agent logs, say); called only on timeout. */
  context?: () => string | Promise<string>;
};

/**
 * Observes a state until `done` holds for it; returns that state. Errors thrown by `observe` are
 * remembered and retried (a server that is restarting, a container not up yet).
 */
export async function waitFor<S>(what: string, observe: () => S | Promise<S>, done: (state: S) => boolean, opts: WaitOptions = {}): Promise<S> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const intervalMs = opts.intervalMs ?? 250;
  const deadline = Date.now() + timeoutMs;
  let last: { state: S } | { error: unknown } | null = null;
  for (;;) {
    try {
      const state = await observe();
      last = { state };
      if (done(state)) return state;
    } catch (error) {
      last = { error };
    }
    if (Date.now() >= deadline) break;
    await sleep(intervalMs);
  }
  const observed =
    last === null ? 'nothing observed' : 'error' in last ? `error: ${describeError(last.error)}` : `last observed: ${show(last.state)}`;
  const extra = opts.context ? `\n${await Promise.resolve(opts.context()).catch((e: unknown) => `(context unavailable: ${describeError(e)})`)}` : '';
  throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}; ${observed}${extra}`);
}

/** Waits until `check` returns something truthy and returns it. */
export async function waitUntil<T>(what: string, check: () => T | Promise<T>, opts: WaitOptions = {}): Promise<NonNullable<T>> {
  return (await waitFor(what, check, (value) => Boolean(value), opts)) as NonNullable<T>;
}

export function show(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value, null, 1);
  } catch {
    return String(value);
  }
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
