import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { demuxLogStream, linesAfter, parseLogTime, sinceOf } from './container-logs.ts';

/** One frame of the engine's multiplexed stream: stream byte, three zeros, length big-endian, payload. */
function frame(stream: 1 | 2, payload: string): Buffer {
  const body = Buffer.from(payload, 'utf8');
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

const ID = 'c0ffee';
const T0 = Date.parse('2026-11-21T08:00:00Z') / 1000;
const iso = (sec: number) => new Date(sec * 1000).toISOString().replace('.000Z', '');
const at = (sec: number, nanos = 0) => `${iso(sec)}.${String(nanos).padStart(9, '0')}Z`;
const textOf = (rows: [string, string][]) => rows.map(([time, line]) => `${time} ${line}\n`).join('');

describe('demuxLogStream', () => {
  test('joins the frames of both streams in the order the engine sent them', () => {
    const data = Buffer.concat([frame(1, 'T out 1\n'), frame(2, 'T err 1\n'), frame(2, 'T err 2\n'), frame(1, 'T out 2 é\n')]);
    assert.equal(demuxLogStream(data), 'T out 1\nT err 1\nT err 2\nT out 2 é\n');
  });

  test('drops a torn last frame, header or payload', () => {
    const whole = Buffer.concat([frame(1, 'T a\n'), frame(2, 'T b\n')]);
    assert.equal(demuxLogStream(whole.subarray(0, whole.length - 1)), 'T a\n');
    assert.equal(demuxLogStream(whole.subarray(0, frame(1, 'T a\n').length + 5)), 'T a\n');
    assert.equal(demuxLogStream(whole.subarray(0, 3)), '');
  });

  test('an empty stream is no text', () => {
    assert.equal(demuxLogStream(Buffer.alloc(0)), '');
  });

  test('a partial line (no newline) ends at its frame instead of swallowing the next one', () => {
    // What Podman sends for `printf tail; echo later`: the later line carries its own timestamp.
    const data = Buffer.concat([frame(1, `${at(T0)} tail`), frame(1, `${at(T0 + 1)} later\n`)]);
    assert.equal(demuxLogStream(data), `${at(T0)} tail\n${at(T0 + 1)} later\n`);
    assert.deepEqual(linesAfter(ID, demuxLogStream(data), null, 1000, 10).lines, ['tail', 'later']);
  });

  test('any frames, cut anywhere, give the whole frames before the cut', () => {
    const frames = fc.array(fc.tuple(fc.constantFrom<1 | 2>(1, 2), fc.string({ maxLength: 20 })), { maxLength: 10 });
    fc.assert(
      fc.property(frames, fc.nat(), (list, cutAt) => {
        const encoded = list.map(([stream, payload]) => frame(stream, payload));
        const data = Buffer.concat(encoded);
        const cut = cutAt % (data.length + 1);
        let whole = 0;
        for (let end = 0; whole < encoded.length && end + encoded[whole]!.length <= cut; whole++) end += encoded[whole]!.length;
        const expected = list.slice(0, whole).map(([, p]) => (p.endsWith('\n') ? p : `${p}\n`)).join('');
        assert.equal(demuxLogStream(data.subarray(0, cut)), expected);
      }),
    );
  });
});

describe('parseLogTime', () => {
  test('nanoseconds, trimmed trailing zeros and no fraction at all', () => {
    assert.deepEqual(parseLogTime('2026-11-21T08:00:00.123456789Z'), { sec: T0, nanos: 123456789 });
    assert.deepEqual(parseLogTime('2026-11-21T08:00:00.1234Z'), { sec: T0, nanos: 123400000 });
    assert.deepEqual(parseLogTime('2026-11-21T08:00:00.000000000Z'), { sec: T0, nanos: 0 });
    assert.deepEqual(parseLogTime('2026-11-21T08:00:00Z'), { sec: T0, nanos: 0 });
  });

  test('an offset is the same instant as its UTC time', () => {
    assert.deepEqual(parseLogTime('2026-11-21T09:30:00.5+01:30'), { sec: T0, nanos: 500000000 });
    assert.deepEqual(parseLogTime('2026-11-21T03:00:00-05:00'), { sec: T0, nanos: 0 });
    assert.deepEqual(parseLogTime('2026-11-21T08:00:00+00:00'), { sec: T0, nanos: 0 });
  });

  test('anything else is null', () => {
    for (const garbage of [
      '',
      'out',
      '2026-11-21',
      '2026-11-21T08:00:00',
      '2026-11-21 08:00:00Z',
      '2026-11-21T08:00:00.Z',
      '2026-11-21T08:00:00.1234567890Z',
      '2026-11-21T08:00:00.1z',
      '2026-13-45T08:00:00Z',
      '2026-11-21T08:00:00+0100',
      ' 2026-11-21T08:00:00Z',
    ]) {
      assert.equal(parseLogTime(garbage), null, garbage);
    }
  });
});

describe('linesAfter', () => {
  const rows: [string, string][] = [
    [at(T0, 100), 'one'],
    [at(T0, 200), 'two'],
    [at(T0 + 1, 0), 'three'],
  ];

  test('a fresh cursor reads everything; the returned cursor then reads only what was appended', () => {
    const first = linesAfter(ID, textOf(rows), null, 1000, 100);
    assert.deepEqual(first, { lines: ['one', 'two', 'three'], cursor: { id: ID, sec: T0 + 1, nanos: 0, skip: 1 } });
    assert.deepEqual(linesAfter(ID, textOf(rows), first.cursor, 1000, 100).lines, []);
    const more = textOf([...rows, [at(T0 + 1, 0), 'four'], [at(T0 + 2, 5), 'five']]);
    assert.deepEqual(linesAfter(ID, more, first.cursor, 1000, 100).lines, ['four', 'five']);
  });

  test('lines sharing one timestamp, split by maxLines, are each read once', () => {
    const same: [string, string][] = Array.from({ length: 7 }, (_, i) => [`${iso(T0)}Z`, `line ${i}`]);
    const text = textOf(same);
    let cursor: Record<string, unknown> | null = null;
    const got: string[] = [];
    for (let i = 0; i < 4; i++) {
      const read = linesAfter(ID, text, cursor, 1000, 3);
      got.push(...read.lines);
      cursor = read.cursor;
    }
    assert.deepEqual(got, same.map(([, line]) => line));
    assert.deepEqual(cursor, { id: ID, sec: T0, nanos: 0, skip: 7 });
  });

  test('a cursor of another container, or no cursor at all, starts from the beginning', () => {
    const read = linesAfter(ID, textOf(rows), { id: 'other', sec: T0 + 1, nanos: 0, skip: 1 }, 1000, 100);
    assert.deepEqual(read.lines, ['one', 'two', 'three']);
    assert.equal(read.cursor.id, ID);
    assert.deepEqual(linesAfter(ID, textOf(rows), {}, 1000, 100).lines, ['one', 'two', 'three']);
    assert.deepEqual(linesAfter(ID, textOf(rows), { id: ID, sec: 'x', nanos: 0, skip: 0 }, 1000, 100).lines, ['one', 'two', 'three']);
    assert.equal(sinceOf('other', { id: ID, sec: T0, nanos: 0, skip: 1 }), 0);
    assert.equal(sinceOf(ID, null), 0);
  });

  test('asks the engine from one second before the cursor (Podman keeps only lines strictly after since)', () => {
    assert.equal(sinceOf(ID, { id: ID, sec: T0, nanos: 5, skip: 2 }), T0 - 1);
    assert.equal(sinceOf(ID, { id: ID, sec: 0, nanos: 0, skip: 0 }), 0);
  });

  test('stays within maxLines and maxBytes, but always returns at least one line', () => {
    const four: [string, string][] = ['aaaa', 'bbbb', 'cccc', 'dddd'].map((line, i) => [at(T0, i), line]);
    assert.deepEqual(linesAfter(ID, textOf(four), null, 1000, 2).lines, ['aaaa', 'bbbb']);
    // Each line costs its length and a newline: two fit in 10 bytes, a third would not.
    assert.deepEqual(linesAfter(ID, textOf(four), null, 10, 100).lines, ['aaaa', 'bbbb']);
    assert.deepEqual(linesAfter(ID, textOf(four), null, 1, 100), { lines: ['aaaa'], cursor: { id: ID, sec: T0, nanos: 0, skip: 1 } });
    assert.deepEqual(linesAfter(ID, textOf(four), null, 1000, 0).lines, ['aaaa']);
  });

  test('rows without a timestamp are ignored; a line may be empty or hold spaces', () => {
    const text = `garbage\n${at(T0)} \n\n${at(T0, 1)}  two  spaces \n${at(T0, 2)}`;
    assert.deepEqual(linesAfter(ID, text, null, 1000, 100).lines, ['', ' two  spaces ', '']);
  });

  test('nothing new keeps the cursor as it was', () => {
    const cursor = { id: ID, sec: T0 + 1, nanos: 0, skip: 1 };
    assert.deepEqual(linesAfter(ID, textOf(rows), cursor, 1000, 100), { lines: [], cursor });
    assert.deepEqual(linesAfter(ID, '', null, 1000, 100), { lines: [], cursor: { id: ID, sec: 0, nanos: 0, skip: 0 } });
  });
});

// ---- The engine, as the reader sees it: every read starts again at `since` and gets all lines since ----

/** `partial`: logged without its newline (the container had not ended the line, or it was over-long). */
type Logged = { sec: number; nanos: number; stream: 1 | 2; text: string; partial: boolean };
type Style = 'nanos' | 'trimmed' | 'whole' | 'offset';

/** How engines print a timestamp: newer Podman (9 digits), Docker (trailing zeros trimmed), Podman 4 (whole seconds, maybe local). */
function stamp(sec: number, nanos: number, style: Style): string {
  const digits = String(nanos).padStart(9, '0');
  switch (style) {
    case 'nanos':
      return `${iso(sec)}.${digits}Z`;
    case 'trimmed': {
      const trimmed = digits.replace(/0+$/, '');
      return trimmed ? `${iso(sec)}.${trimmed}Z` : `${iso(sec)}Z`;
    }
    case 'whole':
      return `${iso(sec)}Z`;
    case 'offset':
      return `${iso(sec + 5.5 * 3600)}+05:30`;
  }
}

/** Docker keeps lines at or after `since`; Podman only those strictly after it (to the nanosecond). */
function engineLogs(logged: Logged[], since: number, strict: boolean, style: Style): Buffer {
  const kept = logged.filter((l) => since === 0 || (strict ? l.sec > since || (l.sec === since && l.nanos > 0) : l.sec >= since));
  return Buffer.concat(kept.map((l) => frame(l.stream, `${stamp(l.sec, l.nanos, style)} ${l.text}${l.partial ? '' : '\n'}`)));
}

/** Lines in the order the engine logged them: time never goes back, and many lines share a time. */
const anyLog = fc
  .array(
    fc.record({
      step: fc.constantFrom('same', 'same', 'same', 'nanos', 'second', 'zero'),
      nanos: fc.integer({ min: 1, max: 999_999_999 }),
      stream: fc.constantFrom<1 | 2>(1, 2),
      partial: fc.constantFrom(false, false, false, true),
      text: fc.string({ unit: fc.constantFrom('a', 'b', ' ', 'é', '\t', '0'), maxLength: 6 }),
    }),
    { maxLength: 60 },
  )
  .map((raw) => {
    let sec = T0;
    let nanos = 0;
    return raw.map((r, i): Logged => {
      if (r.step === 'nanos' && r.nanos > nanos) nanos = r.nanos;
      if (r.step === 'second') [sec, nanos] = [sec + 1, r.nanos];
      if (r.step === 'zero') [sec, nanos] = [sec + 1, 0];
      return { sec, nanos, stream: r.stream, text: `${i}${r.text}`, partial: r.partial };
    });
  });

const anyReads = fc.array(
  fc.record({ appended: fc.nat({ max: 12 }), maxLines: fc.integer({ min: 1, max: 8 }), maxBytes: fc.integer({ min: 1, max: 80 }) }),
  { minLength: 1, maxLength: 20 },
);

describe('reading a growing log in pieces', () => {
  test('yields every line exactly once, in order, whatever the pieces, engine and timestamp style', () => {
    fc.assert(
      fc.property(anyLog, anyReads, fc.boolean(), fc.constantFrom<Style>('nanos', 'trimmed', 'whole', 'offset'), (logged, reads, strict, style) => {
        const got: string[] = [];
        let cursor: Record<string, unknown> | null = null;
        let written = 0;
        for (let i = 0; ; i++) {
          assert.ok(i < 4 * logged.length + 50, `no progress after ${got.length} of ${logged.length} lines`);
          const plan = reads[i % reads.length]!;
          written = Math.min(logged.length, written + plan.appended);
          const text = demuxLogStream(engineLogs(logged.slice(0, written), sinceOf(ID, cursor), strict, style));
          const read = linesAfter(ID, text, cursor, plan.maxBytes, plan.maxLines);
          assert.ok(read.lines.length <= plan.maxLines);
          got.push(...read.lines);
          cursor = JSON.parse(JSON.stringify(read.cursor)) as Record<string, unknown>; // kept durably as JSON
          if (read.lines.length > 0) continue;
          if (written === logged.length) break;
          written++; // nothing new yet: the container writes on
        }
        assert.deepEqual(got, logged.map((l) => l.text));
      }),
      { numRuns: 500 },
    );
  });
});
