import { DriftlessError } from '../protocol/errors.ts';

/**
 * Limits on how often a source may try to prove who it is, and on how many long-lived sessions
 * one party holds at once. All in memory, per server process: a replica behind a load balancer
 * keeps its own counts, which only makes the effective limit a small multiple.
 */

/** A token bucket: holds at most `capacity` tokens, and gains `refillPerSecond` back over time. */
export type BucketConfig = { capacity: number; refillPerSecond: number };

export type TokenBuckets = {
  /** Takes `cost` tokens without refusing: a bucket may go into debt (so a costly failure is paid in full), at most one capacity deep. */
  drain(key: string, cost: number, nowMs: number): void;
  /** How long until `key`'s bucket holds `cost` tokens (0: it does now), without taking any. */
  waitMs(key: string, cost: number, nowMs: number): number;
  size(): number;
};

type Bucket = { tokens: number; atMs: number };

/**
 * Buckets keyed by a source address or an identity. Memory is bounded: past `maxKeys`, buckets that
 * have refilled (they hold nothing worth remembering) are forgotten, then the oldest.
 */
export function createTokenBuckets(config: BucketConfig, maxKeys = 100_000): TokenBuckets {
  if (!(config.capacity > 0) || !(config.refillPerSecond > 0)) throw new RangeError('rate limit: capacity and refillPerSecond must be positive');
  const buckets = new Map<string, Bucket>();

  function current(key: string, nowMs: number): Bucket | undefined {
    const bucket = buckets.get(key);
    if (!bucket) return undefined;
    const elapsed = Math.max(0, nowMs - bucket.atMs);
    bucket.tokens = Math.min(config.capacity, bucket.tokens + (elapsed / 1000) * config.refillPerSecond);
    bucket.atMs = Math.max(bucket.atMs, nowMs);
    return bucket;
  }

  function remember(key: string, bucket: Bucket, nowMs: number): void {
    if (buckets.has(key)) return;
    if (buckets.size >= maxKeys) {
      for (const [k] of buckets) if ((current(k, nowMs)?.tokens ?? 0) >= config.capacity) buckets.delete(k);
      // Still full: forget the oldest (insertion order), which is the least likely to matter.
      for (const [k] of buckets) {
        if (buckets.size < maxKeys) break;
        buckets.delete(k);
      }
    }
    buckets.set(key, bucket);
  }

  // A cost above the capacity waits for a full bucket, not for ever.
  const waitFor = (tokens: number, cost: number) => {
    const need = Math.min(cost, config.capacity);
    return tokens >= need ? 0 : Math.ceil(((need - tokens) / config.refillPerSecond) * 1000);
  };

  return {
    drain(key, cost, nowMs) {
      const bucket = current(key, nowMs) ?? { tokens: config.capacity, atMs: nowMs };
      bucket.tokens = Math.max(-config.capacity, bucket.tokens - cost);
      remember(key, bucket, nowMs);
    },
    waitMs(key, cost, nowMs) {
      return waitFor(current(key, nowMs)?.tokens ?? config.capacity, cost);
    },
    size: () => buckets.size,
  };
}

/**
 * How fast a source may try credentials. Every attempt at enrolment or a device session costs
 * `attemptCost` from the source's bucket; every failed one (a wrong enrollment token, a bad device
 * signature, an unknown, revoked or expired API token) costs `failureCost` more, so guessing runs
 * dry long before honest traffic does. A request bearing an API token costs nothing unless it fails.
 * Failures also drain a bucket per identity (a device name, a token id), so a guesser spreading
 * over many addresses is still slowed on the one name it aims at.
 */
export type AuthLimitConfig = {
  perSource: BucketConfig;
  perIdentity: BucketConfig;
  attemptCost: number;
  failureCost: number;
};

/**
 * Honest attempts cost nothing by default: a whole fleet behind one NAT address renewing its
 * sessions after a long outage, or a simulator enrolling ten thousand devices, must not queue
 * behind a rate meant for guessers (admission control bounds the load). Failures are what drain
 * a source: a guesser from one address gets under 3 tries a second after a burst of 30, and one
 * device name 10 failures, then one every 6 seconds.
 */
export const DEFAULT_AUTH_LIMITS: AuthLimitConfig = {
  perSource: { capacity: 300, refillPerSecond: 30 },
  perIdentity: { capacity: 10, refillPerSecond: 1 / 6 },
  attemptCost: 0,
  failureCost: 10,
};

export type AuthLimiter = {
  /** Before an attempt: refuses as `busy` (429, with Retry-After) when the source or the identity has no budget left. */
  check(source: string | null, identity?: string | null): void;
  /** An attempt that will do real work (enrolment, a session): charged whatever its outcome. */
  attempt(source: string): void;
  /** After a failed attempt. */
  failed(source: string, identity?: string | null): void;
};

export function createAuthLimiter(config: AuthLimitConfig, now: () => number): AuthLimiter {
  const sources = createTokenBuckets(config.perSource);
  const identities = createTokenBuckets(config.perIdentity);
  const refuse = (what: string, waitMs: number) =>
    new DriftlessError('busy', `too many authentication attempts ${what}; try again in ${Math.max(1, Math.ceil(waitMs / 1000))}s`, waitMs);
  return {
    check(source, identity) {
      const nowMs = now();
      const sourceWait = source === null ? 0 : sources.waitMs(source, config.attemptCost, nowMs);
      if (sourceWait > 0) throw refuse(`from ${source}`, sourceWait);
      if (identity) {
        const identityWait = identities.waitMs(identity, 1, nowMs);
        if (identityWait > 0) throw refuse(`for ${identity}`, identityWait);
      }
    },
    attempt(source) {
      sources.drain(source, config.attemptCost, now());
    },
    failed(source, identity) {
      const nowMs = now();
      sources.drain(source, config.failureCost, nowMs);
      if (identity) identities.drain(identity, 1, nowMs);
    },
  };
}

/** A held session slot; releasing twice is harmless. */
export type Lease = { release(): void };

export type ConcurrencyLimit = {
  /** Takes one of `key`'s slots, or refuses as `busy` when all `max` are held. */
  acquire(key: string): Lease;
  active(key: string): number;
};

/**
 * A cap on long-lived sessions (terminal, exec, log follow) per device or per operator. Use:
 * `const lease = limit.acquire(`device:${name}`); socket.on('close', () => lease.release());`
 */
export function createConcurrencyLimit(max: number, what = 'sessions'): ConcurrencyLimit {
  if (!(max >= 1)) throw new RangeError('concurrency limit: max must be at least 1');
  const held = new Map<string, number>();
  return {
    acquire(key) {
      const count = held.get(key) ?? 0;
      if (count >= max) throw new DriftlessError('busy', `${key} already has ${count} ${what} open (at most ${max}); close one first`, 5_000);
      held.set(key, count + 1);
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          const left = (held.get(key) ?? 1) - 1;
          if (left <= 0) held.delete(key);
          else held.set(key, left);
        },
      };
    },
    active: (key) => held.get(key) ?? 0,
  };
}
