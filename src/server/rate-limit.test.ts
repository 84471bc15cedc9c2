import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DriftlessError } from '../protocol/errors.ts';
import { createAuthLimiter, createConcurrencyLimit, createTokenBuckets, DEFAULT_AUTH_LIMITS, type AuthLimitConfig } from './rate-limit.ts';

const refusal = (fn: () => void): DriftlessError => {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof DriftlessError, String(error));
    return error;
  }
  assert.fail('expected a refusal');
};

describe('token buckets', () => {
  test('a bucket starts full, runs dry, and refills with the clock', () => {
    const buckets = createTokenBuckets({ capacity: 3, refillPerSecond: 1 });
    assert.equal(buckets.waitMs('a', 1, 0), 0);
    buckets.drain('a', 3, 0);
    assert.equal(buckets.waitMs('a', 1, 0), 1000);
    assert.equal(buckets.waitMs('a', 1, 500), 500);
    assert.equal(buckets.waitMs('a', 1, 1000), 0);
    assert.equal(buckets.waitMs('a', 3, 1000), 2000);
    assert.equal(buckets.waitMs('b', 1, 0), 0, 'other keys are untouched');
  });

  test('a drain is paid in full but at most one capacity deep; a clock going backwards refills nothing', () => {
    const buckets = createTokenBuckets({ capacity: 2, refillPerSecond: 1 });
    buckets.drain('a', 100, 10_000);
    assert.equal(buckets.waitMs('a', 1, 10_000), 3000, 'two seconds of debt, then one token');
    assert.equal(buckets.waitMs('a', 1, 13_000), 0);
    assert.equal(buckets.waitMs('a', 2, 5_000), 1000, 'time going back does not refill');
    assert.equal(buckets.waitMs('a', 50, 60_000), 0, 'a cost above the capacity waits for a full bucket only');
  });

  test('memory stays bounded: refilled buckets are forgotten first, then the oldest', () => {
    const buckets = createTokenBuckets({ capacity: 1, refillPerSecond: 1 }, 3);
    buckets.drain('a', 1, 0);
    buckets.drain('b', 1, 0);
    buckets.drain('c', 1, 5_000);
    buckets.drain('d', 1, 5_000);
    assert.ok(buckets.size() <= 3);
    assert.equal(buckets.waitMs('c', 1, 5_000), 1000, 'a recent bucket is kept');
    for (let i = 0; i < 1000; i++) buckets.drain(`k${i}`, 1, 5_000);
    assert.equal(buckets.size(), 3);
  });
});

describe('authentication limits', () => {
  const config: AuthLimitConfig = { perSource: { capacity: 20, refillPerSecond: 2 }, perIdentity: { capacity: 3, refillPerSecond: 0.1 }, attemptCost: 1, failureCost: 5 };

  test('failures count faster than good attempts; the refusal is busy with a Retry-After', () => {
    const clock = { ms: 0 };
    const limiter = createAuthLimiter(config, () => clock.ms);
    for (let i = 0; i < 20; i++) {
      limiter.check('10.0.0.1');
      limiter.attempt('10.0.0.1');
    }
    assert.equal(refusal(() => limiter.check('10.0.0.1')).code, 'busy', 'twenty good attempts use the burst');
    clock.ms += 10_000;
    let failures = 0;
    for (;;) {
      try {
        limiter.check('10.0.0.2');
      } catch {
        break;
      }
      limiter.attempt('10.0.0.2');
      limiter.failed('10.0.0.2');
      failures++;
    }
    assert.equal(failures, 4, 'a failure costs six attempts');
    const error = refusal(() => limiter.check('10.0.0.2'));
    assert.equal(error.status, 429);
    assert.match(error.message, /too many authentication attempts from 10\.0\.0\.2; try again in 3s/);
    assert.equal(error.retryAfterMs, 2500, 'the last failure is paid in full');
    clock.ms += 2500;
    limiter.check('10.0.0.2');
    limiter.check('10.0.0.1');
  });

  test('an identity under attack from many sources is slowed on its own', () => {
    const clock = { ms: 0 };
    const limiter = createAuthLimiter(config, () => clock.ms);
    for (let i = 0; i < 3; i++) {
      limiter.check(`10.0.1.${i}`, 'device:pos-01');
      limiter.failed(`10.0.1.${i}`, 'device:pos-01');
    }
    const error = refusal(() => limiter.check('10.0.1.99', 'device:pos-01'));
    assert.match(error.message, /for device:pos-01/);
    assert.equal(error.retryAfterMs, 10_000);
    limiter.check('10.0.1.99', 'device:pos-02');
    clock.ms += 10_000;
    limiter.check('10.0.1.99', 'device:pos-01');
  });

  test('the defaults let a NAT-ed fleet renew its sessions and stop a guesser', () => {
    const clock = { ms: 0 };
    const limiter = createAuthLimiter(DEFAULT_AUTH_LIMITS, () => clock.ms);
    // 100,000 devices renewing hourly behind one address: 28 a second, for a minute.
    for (let second = 0; second < 60; second++, clock.ms += 1000) {
      for (let i = 0; i < 28; i++) {
        limiter.check('192.0.2.1');
        limiter.attempt('192.0.2.1');
      }
    }
    let allowed = 0;
    for (let i = 0; i < 1000; i++, clock.ms += 10) {
      try {
        limiter.check('198.51.100.7');
      } catch {
        continue;
      }
      allowed++;
      limiter.attempt('198.51.100.7');
      limiter.failed('198.51.100.7');
    }
    // A burst of 300 / 11 tries, then 30 / 11 a second.
    assert.ok(allowed >= 40 && allowed <= 60, `a guesser got ${allowed} tries in 10 s`);
  });
});

describe('concurrency limit', () => {
  test('at most max leases per key; release frees one, twice is harmless', () => {
    const limit = createConcurrencyLimit(2, 'terminal sessions');
    const a = limit.acquire('operator:alice');
    limit.acquire('operator:alice');
    const error = refusal(() => limit.acquire('operator:alice'));
    assert.equal(error.code, 'busy');
    assert.match(error.message, /operator:alice already has 2 terminal sessions open \(at most 2\)/);
    limit.acquire('operator:bob');
    a.release();
    a.release();
    assert.equal(limit.active('operator:alice'), 1);
    limit.acquire('operator:alice');
    assert.throws(() => limit.acquire('operator:alice'));
  });
});
