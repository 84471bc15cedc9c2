import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { formatBytes, formatCount, formatShare } from './quantity.ts';

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

describe('formatCount', () => {
  test('groups thousands the same way whatever the machine’s locale', () => {
    assert.equal(formatCount(0), '0');
    assert.equal(formatCount(999), '999');
    assert.equal(formatCount(1000), '1,000');
    assert.equal(formatCount(10000), '10,000');
    assert.equal(formatCount(1234567), '1,234,567');
    assert.equal(formatCount(-4200), '-4,200');
  });

  test('never throws, and a larger number never reads as a smaller one', () => {
    const value = (text: string) => Number(text.replaceAll(',', ''));
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e15, max: 1e15 }), fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e15, max: 1e15 }), (a, b) => {
        const [low, high] = a <= b ? [a, b] : [b, a];
        assert.ok(value(formatCount(low)) <= value(formatCount(high)), `${low} → ${formatCount(low)}, ${high} → ${formatCount(high)}`);
      }),
    );
    fc.assert(fc.property(fc.double(), (n) => typeof formatCount(n) === 'string'));
  });
});

describe('formatShare', () => {
  test('a whole percentage, "<1%" for a sliver and "0%" of nothing', () => {
    assert.equal(formatShare(0, 0), '0%');
    assert.equal(formatShare(5, 0), '0%');
    assert.equal(formatShare(0, 10), '0%');
    assert.equal(formatShare(1, 4), '25%');
    assert.equal(formatShare(1, 3), '33%');
    assert.equal(formatShare(2, 3), '67%');
    assert.equal(formatShare(10, 10), '100%');
    assert.equal(formatShare(1, 1000), '<1%');
    assert.equal(formatShare(1, 100), '1%');
    assert.equal(formatShare(1, 10000), '<1%');
    assert.equal(formatShare(199, 200), '>99%', 'one device short of the whole fleet is not all of it');
    assert.equal(formatShare(99, 100), '99%');
  });

  test('a part short of the whole never reads as 100%', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1_000_000 }), fc.integer({ min: 1, max: 1_000_000 }), (part, missing) => {
        assert.notEqual(formatShare(part, part + missing), '100%');
      }),
    );
  });

  test('a part that is there never reads as 0%', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 0, max: 1_000_000 }), (part, rest) => {
        assert.notEqual(formatShare(part, part + rest), '0%');
      }),
    );
  });

  test('the share grows with the part', () => {
    const value = (text: string) => (text === '<1%' ? 0.5 : text === '>99%' ? 99.5 : Number(text.replace('%', '')));
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100_000 }), fc.nat(), fc.nat(), (whole, x, y) => {
        const [a, b] = [x % (whole + 1), y % (whole + 1)].sort((p, q) => p - q) as [number, number];
        assert.ok(value(formatShare(a, whole)) <= value(formatShare(b, whole)), `${a}/${whole} vs ${b}/${whole}`);
      }),
    );
  });
});

describe('formatBytes', () => {
  test('bytes, then KiB, MiB below 1 GiB, GiB with one decimal below 10 GiB', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1023), '1023 B');
    assert.equal(formatBytes(KIB), '1 KiB');
    assert.equal(formatBytes(1536), '2 KiB');
    assert.equal(formatBytes(MIB - 1), '1024 KiB');
    assert.equal(formatBytes(MIB), '1 MiB');
    assert.equal(formatBytes(512 * MIB), '512 MiB');
    assert.equal(formatBytes(GIB - 1), '1024 MiB');
    assert.equal(formatBytes(GIB), '1.0 GiB');
    assert.equal(formatBytes(1.5 * GIB), '1.5 GiB');
    assert.equal(formatBytes(10 * GIB - 1), '10.0 GiB');
    assert.equal(formatBytes(10 * GIB), '10 GiB');
    assert.equal(formatBytes(64 * GIB), '64 GiB');
  });

  const value = (text: string) => {
    const match = /^(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?) (B|KiB|MiB|GiB)$/.exec(text);
    assert.ok(match, `unexpected form: ${text}`);
    return Number(match[1]) * { B: 1, KiB: KIB, MiB: MIB, GiB: GIB }[match[2] as 'B' | 'KiB' | 'MiB' | 'GiB'];
  };

  test('never throws on any number', () => {
    fc.assert(fc.property(fc.double(), (n) => typeof formatBytes(n) === 'string'));
  });

  test('a number and a unit, and more bytes never read as fewer', () => {
    const size = fc.oneof(fc.integer({ min: 0, max: 2 ** 53 - 1 }), fc.double({ min: 0, max: 2 ** 50, noNaN: true }), fc.integer({ min: 0, max: 20 * GIB }));
    fc.assert(
      fc.property(size, size, (a, b) => {
        const [low, high] = a <= b ? [a, b] : [b, a];
        assert.ok(value(formatBytes(low)) <= value(formatBytes(high)), `${low} → ${formatBytes(low)}, ${high} → ${formatBytes(high)}`);
      }),
    );
  });

  test('what is shown stays within the rounding of its unit', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 53 - 1 }), (n) => {
        const shown = value(formatBytes(n));
        const step = n >= 10 * GIB ? GIB : n >= GIB ? GIB / 10 : n >= MIB ? MIB : n >= KIB ? KIB : 1;
        assert.ok(Math.abs(shown - n) <= step / 2, `${n} → ${formatBytes(n)}`);
      }),
    );
  });
});
