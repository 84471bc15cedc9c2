import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRandom, unitHash } from './random.ts';

test('a seed gives the same sequence every time, another seed another one', () => {
  const draw = (seed: number) => {
    const random = createRandom(seed);
    return Array.from({ length: 20 }, () => random.next());
  };
  assert.deepEqual(draw(1), draw(1));
  assert.notDeepEqual(draw(1), draw(2));
});

test('numbers stay in range and spread over it', () => {
  const random = createRandom(99);
  const buckets = new Array<number>(10).fill(0);
  for (let i = 0; i < 10_000; i++) {
    const x = random.next();
    assert.ok(x >= 0 && x < 1);
    buckets[Math.floor(x * 10)]!++;
    const n = random.int(7);
    assert.ok(Number.isInteger(n) && n >= 0 && n < 7);
  }
  for (const count of buckets) assert.ok(count > 800 && count < 1200, `bucket of ${count} in 10,000`);
  assert.ok(['a', 'b'].includes(random.pick(['a', 'b'])));
  assert.throws(() => random.pick([]), RangeError);
});

test('unitHash is stable per name and salt, and spreads', () => {
  assert.equal(unitHash('dev-00001'), unitHash('dev-00001'));
  assert.notEqual(unitHash('dev-00001'), unitHash('dev-00002'));
  assert.notEqual(unitHash('dev-00001', 1), unitHash('dev-00001', 2));
  let below = 0;
  for (let i = 0; i < 10_000; i++) if (unitHash(`dev-${i}`) < 0.1) below++;
  assert.ok(below > 800 && below < 1200, `${below} of 10,000 below 0.1`);
});
