import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { formatAge, formatClock, formatTimestamp } from './time.ts';

// Dates are built from local fields, so the expectations hold in any time zone the tests run in.
const local = (y: number, mo: number, d: number, h: number, mi: number, s: number) => new Date(y, mo - 1, d, h, mi, s);

describe('formatClock', () => {
  test('pads hours, minutes and seconds to two digits', () => {
    assert.equal(formatClock(local(2024, 7, 19, 4, 9, 2)), '04:09:02');
    assert.equal(formatClock(local(2024, 7, 19, 23, 59, 59)), '23:59:59');
    assert.equal(formatClock(local(2024, 7, 19, 0, 0, 0)), '00:00:00');
  });
});

describe('formatTimestamp', () => {
  test('shows the instant as a local date and clock', () => {
    assert.equal(formatTimestamp(local(2024, 7, 19, 4, 9, 12).toISOString()), '2024-07-19 04:09:12');
    assert.equal(formatTimestamp(local(2025, 12, 31, 23, 0, 5).toISOString()), '2025-12-31 23:00:05');
  });

  test('a missing value is a dash; an unreadable one is shown as it came', () => {
    assert.equal(formatTimestamp(null), '—');
    assert.equal(formatTimestamp(undefined), '—');
    assert.equal(formatTimestamp(''), '—');
    assert.equal(formatTimestamp('not a date'), 'not a date');
  });

  test('any valid instant gives YYYY-MM-DD hh:mm:ss', () => {
    fc.assert(
      fc.property(fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('9999-01-01T00:00:00Z'), noInvalidDate: true }), (date) => {
        assert.match(formatTimestamp(date.toISOString()), /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
      }),
    );
  });
});

describe('formatAge', () => {
  const now = Date.parse('2024-07-19T12:00:00.000Z');
  const ago = (ms: number) => new Date(now - ms).toISOString();
  const S = 1000;
  const MIN = 60 * S;
  const H = 60 * MIN;

  test('seconds below a minute, minutes below an hour, hours below two days, then days', () => {
    const cases: [number, string][] = [
      [0, '0 s ago'],
      [12 * S, '12 s ago'],
      [59 * S, '59 s ago'],
      [59.4 * S, '59 s ago'],
      [59.6 * S, '1 min ago'], // rounded to the second first
      [60 * S, '1 min ago'],
      [5 * MIN + 59 * S, '5 min ago'],
      [59 * MIN + 59 * S, '59 min ago'],
      [H, '1 h ago'],
      [3 * H + 59 * MIN, '3 h ago'],
      [47 * H + 59 * MIN, '47 h ago'],
      [48 * H, '2 d ago'],
      [71 * H, '2 d ago'],
      [72 * H, '3 d ago'],
      [400 * 24 * H, '400 d ago'],
    ];
    for (const [ms, expected] of cases) assert.equal(formatAge(ago(ms), now), expected, `${ms} ms`);
  });

  test('a time ahead of the clock (skew) reads as just now, never negative', () => {
    assert.equal(formatAge(ago(-5 * S), now), '0 s ago');
    assert.equal(formatAge(ago(-3 * H), now), '0 s ago');
  });

  test('a missing value is a dash; an unreadable one is shown as it came', () => {
    assert.equal(formatAge(null, now), '—');
    assert.equal(formatAge(undefined, now), '—');
    assert.equal(formatAge('', now), '—');
    assert.equal(formatAge('yesterday', now), 'yesterday');
  });

  test('older is never shown as younger', () => {
    const rank = (text: string) => {
      const match = /^(\d+) (s|min|h|d) ago$/.exec(text);
      assert.ok(match, text);
      const unit = { s: 1, min: 60, h: 3600, d: 86400 }[match[2] as 's' | 'min' | 'h' | 'd'];
      return Number(match[1]) * unit;
    };
    const age = fc.integer({ min: 0, max: 10 * 365 * 24 * H });
    fc.assert(
      fc.property(age, age, (a, b) => {
        const [young, old] = a <= b ? [a, b] : [b, a];
        assert.ok(rank(formatAge(ago(young), now)) <= rank(formatAge(ago(old), now)), `${young} vs ${old}`);
      }),
    );
  });
});
