import { DriftlessError } from '../../protocol/errors.ts';

/**
 * When the agent may next speak to the server. After the server was unreachable or answered
 * "busy", the next attempt waits a jittered exponential delay ("full jitter": a random point in
 * [0, min(cap, base·2^failures)]), and never less than the server's Retry-After. Thousands of
 * devices returning at once then arrive spread out instead of in lock step.
 */
export type Backoff = { baseMs: number; capMs: number; jitter: boolean };

/**
 * The cap is a minute: a fleet sized for one poll per device per minute absorbs everyone
 * returning spread over a minute, and a device back on its link waits at most that long.
 */
export const DEFAULT_BACKOFF: Backoff = { baseMs: 1_000, capMs: 60_000, jitter: true };

export type ContactGate = {
  /** Milliseconds until the agent may contact the server again (0: now). */
  waitMs(nowMs: number): number;
  succeeded(): void;
  /** Records a failed contact; returns true when it was the link or the server's load (a reason to back off). */
  failed(error: unknown, nowMs: number): boolean;
  /** Consecutive failed contacts. */
  failures(): number;
};

export function createContactGate(backoff: Backoff, random: () => number): ContactGate {
  let failures = 0;
  let notBeforeMs = 0;
  return {
    waitMs: (nowMs) => Math.max(0, notBeforeMs - nowMs),
    succeeded() {
      failures = 0;
      notBeforeMs = 0;
    },
    failed(error, nowMs) {
      if (!(error instanceof DriftlessError) || (error.code !== 'unavailable' && error.code !== 'busy')) return false;
      failures++;
      notBeforeMs = nowMs + backoffDelayMs(backoff, failures, random, error.retryAfterMs);
      return true;
    },
    failures: () => failures,
  };
}

/** The wait after the n-th consecutive failure (n ≥ 1). */
export function backoffDelayMs(backoff: Backoff, failures: number, random: () => number, retryAfterMs: number | null): number {
  const ceiling = Math.min(backoff.capMs, backoff.baseMs * 2 ** Math.min(failures - 1, 40));
  const delay = backoff.jitter ? Math.floor(random() * ceiling) : ceiling;
  return Math.max(delay, retryAfterMs ?? 0);
}
