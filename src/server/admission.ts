import type { ServerResponse } from 'node:http';
import { DriftlessError } from '../protocol/errors.ts';

/**
 * Admission control for the device requests that cost the server real work (a session's Ed25519
 * verify, a status report or telemetry batch to write, enrollment, a desired state that is not a
 * 304). At most `maxInFlight` run at once; up to `maxQueue` more wait, each at most `maxWaitMs`;
 * anything beyond is refused at once as `busy` (429) with a Retry-After spread over
 * [retryAfterMs, 2·retryAfterMs), so a fleet that returned all at once comes back spread out
 * instead of in lock step. Memory and latency stay bounded however many devices knock.
 * The cheap path (a 304 from memory) never enters.
 */
export type AdmissionConfig = {
  maxInFlight: number;
  maxQueue: number;
  /** The least Retry-After a refusal advises; the advice is jittered up to twice this. */
  retryAfterMs: number;
  /** A request queued this long is refused rather than left to its client's deadline (default 5 s). */
  maxWaitMs?: number;
  random?: () => number;
  /** Runs `fn` after `ms`; returns a cancel. Tests substitute their own clock. */
  schedule?: (fn: () => void, ms: number) => () => void;
};

export const DEFAULT_ADMISSION: AdmissionConfig = { maxInFlight: 64, maxQueue: 1024, retryAfterMs: 5_000, maxWaitMs: 5_000 };

/** Gives the slot back; calling it more than once is harmless. */
export type Release = () => void;

export type AdmissionStats = { inFlight: number; queued: number; admitted: number; refused: number; peakInFlight: number; peakQueued: number };

export type Admission = {
  /**
   * Resolves with a release once the request may run; rejects with `busy` when the queue is full
   * or the wait ran out, and with the signal's reason when the caller went away while queued.
   */
  enter(signal?: AbortSignal): Promise<Release>;
  stats(): AdmissionStats;
};

type Waiter = { resolve: (release: Release) => void; reject: (error: unknown) => void; cancel: () => void };

export function createAdmission(config: AdmissionConfig): Admission {
  if (!(config.maxInFlight >= 1) || !(config.maxQueue >= 0)) throw new RangeError('admission: maxInFlight must be at least 1 and maxQueue at least 0');
  const random = config.random ?? Math.random;
  const maxWaitMs = config.maxWaitMs ?? 5_000;
  const schedule =
    config.schedule ??
    ((fn: () => void, ms: number) => {
      const timer = setTimeout(fn, ms);
      timer.unref();
      return () => clearTimeout(timer);
    });
  const queue = new Set<Waiter>(); // insertion-ordered: first in, first admitted
  const counts = { inFlight: 0, admitted: 0, refused: 0, peakInFlight: 0, peakQueued: 0 };

  const busy = (why: string) => {
    counts.refused++;
    return new DriftlessError('busy', `the server is busy (${why}); try again later`, Math.round(config.retryAfterMs * (1 + random())));
  };

  function grant(): Release {
    counts.inFlight++;
    counts.admitted++;
    counts.peakInFlight = Math.max(counts.peakInFlight, counts.inFlight);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      counts.inFlight--;
      const next = queue.values().next();
      if (!next.done && counts.inFlight < config.maxInFlight) {
        queue.delete(next.value);
        next.value.cancel();
        next.value.resolve(grant());
      }
    };
  }

  return {
    enter(signal) {
      if (signal?.aborted) return Promise.reject(signal.reason);
      if (counts.inFlight < config.maxInFlight && queue.size === 0) return Promise.resolve(grant());
      if (queue.size >= config.maxQueue) return Promise.reject(busy('too many requests waiting'));
      return new Promise<Release>((resolve, reject) => {
        const onAbort = () => leave(signal!.reason);
        const cancelTimer = schedule(() => leave(busy(`waited ${Math.round(maxWaitMs / 1000)}s for a turn`)), maxWaitMs);
        const waiter: Waiter = {
          resolve,
          reject,
          cancel: () => {
            cancelTimer();
            signal?.removeEventListener('abort', onAbort);
          },
        };
        function leave(error: unknown): void {
          if (!queue.delete(waiter)) return;
          waiter.cancel();
          reject(error);
        }
        signal?.addEventListener('abort', onAbort, { once: true });
        queue.add(waiter);
        counts.peakQueued = Math.max(counts.peakQueued, queue.size);
      });
    },
    stats: () => ({ ...counts, queued: queue.size }),
  };
}

/**
 * Holds a turn for one HTTP response: waits for it (and stops waiting if the client hangs up), then
 * gives it back when the response has been sent or its connection closed, whichever comes first.
 */
export async function admitResponse(admission: Admission, response: ServerResponse): Promise<void> {
  const gone = new AbortController();
  const onClose = () => gone.abort(new DriftlessError('unavailable', 'the client closed the connection while waiting for a turn'));
  response.once('close', onClose);
  let release: Release;
  try {
    release = await admission.enter(gone.signal);
  } finally {
    response.off('close', onClose);
  }
  if (response.writableFinished || response.destroyed) return release();
  response.once('finish', release);
  response.once('close', release);
}
