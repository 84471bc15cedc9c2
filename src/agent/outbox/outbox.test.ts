import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import type { TelemetryRecord } from '../../protocol/messages.ts';
import { createMemoryStorage } from '../storage/memory-storage.ts';
import { createDirStorage, type Storage } from '../storage/storage.ts';
import { createOutbox, MIN_OUTBOX_QUOTA, type NewRecord } from './outbox.ts';

const AT = '2025-06-01T12:00:00.000Z';
const CHUNK_PREFIX = 'outbox-chunk-';
const line = (text: string, component = 'pos'): NewRecord => ({ kind: 'log', at: AT, component, line: text });
const lines = (records: readonly TelemetryRecord[]) => records.map((r) => (r.kind === 'log' ? r.line : `<${r.kind}>`));
const seqs = (records: readonly TelemetryRecord[]) => records.map((r) => r.seq);
const ALL = Number.MAX_SAFE_INTEGER;

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** The outbox is written against the Storage seam: every test runs on memory and on a real directory. */
const storages: { name: string; open(): Storage; quotaRounds: number }[] = [
  { name: 'memory storage', open: createMemoryStorage, quotaRounds: 300 },
  {
    name: 'directory storage',
    // Every write is fsynced: fewer rounds keep the fast tier fast, still far past the quota.
    quotaRounds: 120,
    open() {
      const dir = mkdtempSync(join(tmpdir(), 'driftless-outbox-'));
      dirs.push(dir);
      return createDirStorage(dir);
    },
  },
];

/** Bytes the chunk files really take in storage (not what the outbox thinks they take). */
function storedChunkBytes(storage: Storage): number {
  return storage.list(CHUNK_PREFIX).reduce((sum, name) => sum + Buffer.byteLength(storage.read(name) ?? ''), 0);
}

for (const { name, open, quotaRounds } of storages) {
  describe(`outbox on ${name}`, () => {
    test('numbers records from 1 in one sequence across kinds', () => {
      const outbox = createOutbox(open());
      outbox.add(line('first'));
      outbox.add({ kind: 'metric', at: AT, name: 'cpu_percent', value: 12.5 });
      outbox.add({ kind: 'event', at: AT, type: 'committed', component: 'pos', message: 'committed 2.4.1' });
      outbox.add({ kind: 'metric', at: AT, component: 'pos', name: 'restarts', value: 1 });
      outbox.commit();
      const batch = outbox.batch(100, ALL);
      assert.deepEqual(seqs(batch), [1, 2, 3, 4]);
      assert.deepEqual(
        batch.map((r) => r.kind),
        ['log', 'metric', 'event', 'metric'],
      );
      assert.deepEqual(batch[1], { kind: 'metric', at: AT, name: 'cpu_percent', value: 12.5, seq: 2 });
    });

    test('nothing is in a batch before commit, and commit makes it visible', () => {
      const outbox = createOutbox(open());
      outbox.add(line('a'));
      outbox.add(line('b'));
      assert.deepEqual(outbox.batch(100, ALL), []);
      assert.equal(outbox.stats().pendingRecords, 0);
      outbox.commit();
      assert.deepEqual(lines(outbox.batch(100, ALL)), ['a', 'b']);
      assert.equal(outbox.stats().pendingRecords, 2);
    });

    test('a batch keeps to its record and byte limits but always holds at least one record', () => {
      const outbox = createOutbox(open());
      for (let i = 1; i <= 10; i++) {
        outbox.add(line(`line-${i}`));
        // Several chunks: limits apply across chunk boundaries too.
        if (i % 3 === 0) outbox.commit();
      }
      outbox.commit();
      assert.deepEqual(seqs(outbox.batch(4, ALL)), [1, 2, 3, 4]);
      assert.deepEqual(seqs(outbox.batch(1, ALL)), [1]);

      const size = JSON.stringify(outbox.batch(1, ALL)[0]).length;
      assert.deepEqual(seqs(outbox.batch(100, 3 * size)), [1, 2, 3], 'three records fit exactly');
      assert.deepEqual(seqs(outbox.batch(100, 3 * size - 1)), [1, 2], 'one byte short of the third');
      assert.deepEqual(seqs(outbox.batch(100, 1)), [1], 'a record larger than the budget still goes alone');
      assert.deepEqual(seqs(outbox.batch(0, ALL)), [1], 'at least one record');
      // batch() does not consume: the same records come back until acknowledged.
      assert.deepEqual(seqs(outbox.batch(100, ALL)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    });

    test('acknowledge forgets what the server stored and removes fully acknowledged chunk files', () => {
      const storage = open();
      const outbox = createOutbox(storage);
      for (const chunk of [['a', 'b'], ['c', 'd'], ['e']]) {
        for (const text of chunk) outbox.add(line(text));
        outbox.commit();
      }
      assert.equal(storage.list(CHUNK_PREFIX).length, 3);

      outbox.acknowledge(3); // the first chunk whole, the second half
      assert.deepEqual(lines(outbox.batch(100, ALL)), ['d', 'e']);
      assert.equal(storage.list(CHUNK_PREFIX).length, 2, 'the half-acknowledged chunk stays');
      assert.deepEqual(outbox.stats().pendingRecords, 2);

      outbox.acknowledge(2); // an older acknowledgement (a late answer) changes nothing
      assert.deepEqual(lines(outbox.batch(100, ALL)), ['d', 'e']);

      outbox.acknowledge(5);
      assert.deepEqual(outbox.batch(100, ALL), []);
      assert.deepEqual(storage.list(CHUNK_PREFIX), []);
      assert.equal(outbox.stats().bytes, 0);
    });

    test('a reopen resumes numbering after the last committed record and returns the same cursors', () => {
      const storage = open();
      const outbox = createOutbox(storage);
      outbox.add(line('a'));
      outbox.setCursor('log:pos', { ino: 7, offset: 2 });
      outbox.commit();
      outbox.add(line('b'));
      outbox.add(line('c'));
      outbox.setCursor('log:pos', { ino: 7, offset: 6 });
      outbox.setCursor('log:db', { index: 1 });
      outbox.commit();
      outbox.acknowledge(1);

      const reopened = createOutbox(storage);
      assert.deepEqual(reopened.cursor('log:pos'), { ino: 7, offset: 6 });
      assert.deepEqual(reopened.cursor('log:db'), { index: 1 });
      assert.equal(reopened.cursor('log:other'), undefined);
      assert.deepEqual(lines(reopened.batch(100, ALL)), ['b', 'c']);
      reopened.add(line('d'));
      reopened.commit();
      assert.deepEqual(seqs(reopened.batch(100, ALL)), [2, 3, 4]);
    });

    test('a reopen after everything was acknowledged still resumes numbering and cursors', () => {
      const storage = open();
      const outbox = createOutbox(storage);
      outbox.add(line('a'));
      outbox.add(line('b'));
      outbox.setCursor('log:pos', { offset: 4 });
      outbox.commit();
      outbox.acknowledge(2);
      assert.deepEqual(storage.list(CHUNK_PREFIX), []);

      const reopened = createOutbox(storage);
      assert.deepEqual(reopened.cursor('log:pos'), { offset: 4 });
      reopened.add(line('c'));
      reopened.commit();
      assert.deepEqual(seqs(reopened.batch(100, ALL)), [3]);
    });

    test('a cursor-only commit survives a reopen and wins over an older chunk’s cursors', () => {
      const storage = open();
      const outbox = createOutbox(storage);
      outbox.add(line('a'));
      outbox.setCursor('log:pos', { offset: 2 });
      outbox.commit();
      // The source was read to its end with no new line (say, a partial line was skipped): only the cursor moves.
      outbox.setCursor('log:pos', { offset: 10 });
      outbox.commit();

      const reopened = createOutbox(storage);
      assert.deepEqual(reopened.cursor('log:pos'), { offset: 10 });
      assert.deepEqual(lines(reopened.batch(100, ALL)), ['a'], 'the chunk itself is still there');

      // And a later chunk wins over the cursor-only commit in turn.
      reopened.add(line('b'));
      reopened.setCursor('log:pos', { offset: 12 });
      reopened.commit();
      assert.deepEqual(createOutbox(storage).cursor('log:pos'), { offset: 12 });
    });

    test('a commit with nothing added and no cursor moved writes nothing', () => {
      const storage = open();
      const outbox = createOutbox(storage);
      outbox.commit();
      assert.deepEqual(storage.list(''), []);
    });

    test('uncommitted records and cursors vanish on reopen and their numbers are given again', () => {
      const storage = open();
      const outbox = createOutbox(storage);
      outbox.add(line('a'));
      outbox.setCursor('log:pos', { offset: 2 });
      outbox.commit();
      outbox.add(line('lost-1'));
      outbox.add(line('lost-2'));
      outbox.setCursor('log:pos', { offset: 99 });
      // crash: no commit

      const reopened = createOutbox(storage);
      assert.deepEqual(reopened.cursor('log:pos'), { offset: 2 }, 'the source is read again from the committed cursor');
      assert.deepEqual(lines(reopened.batch(100, ALL)), ['a']);
      reopened.add(line('b'));
      reopened.commit();
      // seq 2 was never uploaded (never committed), so giving it again is harmless.
      assert.deepEqual(reopened.batch(100, ALL), [{ ...line('a'), seq: 1 }, { ...line('b'), seq: 2 }]);
    });

    test('an acknowledgement above anything the outbox holds moves numbering past it, also across a reopen', () => {
      const storage = open();
      const outbox = createOutbox(storage);
      outbox.add(line('a'));
      outbox.commit();
      // The server already has records up to 100: this device lost its outbox once.
      outbox.acknowledge(100);
      assert.deepEqual(outbox.batch(100, ALL), []);
      outbox.add(line('b'));
      outbox.commit();
      assert.deepEqual(seqs(outbox.batch(100, ALL)), [101]);

      const reopened = createOutbox(storage);
      assert.deepEqual(seqs(reopened.batch(100, ALL)), [101]);
      reopened.add(line('c'));
      reopened.commit();
      assert.deepEqual(seqs(reopened.batch(100, ALL)), [101, 102]);

      const fresh = createOutbox(open());
      fresh.acknowledge(41);
      fresh.add(line('x'));
      fresh.commit();
      assert.deepEqual(seqs(fresh.batch(100, ALL)), [42]);
      assert.deepEqual(seqs(createOutbox(storage).batch(100, ALL)), [101, 102]);
    });

    test('a garbage or truncated chunk file read at reopen is ignored without throwing', () => {
      const storage = open();
      const outbox = createOutbox(storage);
      outbox.add(line('a'));
      outbox.setCursor('log:pos', { offset: 2 });
      outbox.commit();
      outbox.add(line('b'));
      outbox.setCursor('log:pos', { offset: 4 });
      outbox.commit();
      const [first, second] = storage.list(CHUNK_PREFIX);
      assert.ok(first && second);
      // The newest chunk torn in half; a foreign file with the chunk prefix beside it.
      const text = storage.read(second)!;
      storage.write(second, text.slice(0, Math.floor(text.length / 2)));
      storage.write(`${CHUNK_PREFIX}9999999999999999.json`, 'not json at all {');
      storage.write(`${CHUNK_PREFIX}0000000000000050.json`, JSON.stringify({ first: 50, last: 60, epoch: 99, cursors: {}, records: [] }));

      const reopened = createOutbox(storage);
      assert.deepEqual(lines(reopened.batch(100, ALL)), ['a'], 'only the chunk that reads back whole');
      assert.deepEqual(reopened.cursor('log:pos'), { offset: 2 }, 'cursors of the whole chunk: the torn one’s lines are read again');
      assert.deepEqual(storage.list(CHUNK_PREFIX), [first], 'unreadable chunk files are cleared away');
      reopened.add(line('b again'));
      reopened.commit();
      assert.deepEqual(seqs(reopened.batch(100, ALL)), [1, 2]);
    });

    test('a garbage state document reads as absent rather than throwing', () => {
      const storage = open();
      storage.write('outbox-state.json', '{"ackedSeq": "lots"');
      const outbox = createOutbox(storage);
      outbox.add(line('a'));
      outbox.commit();
      assert.deepEqual(seqs(outbox.batch(100, ALL)), [1]);
    });

    test('with a small quota, the outbox stays within quota plus one chunk, drops oldest first and counts exactly what it dropped', () => {
      const storage = open();
      let outbox = createOutbox(storage, { quotaBytes: 1 }); // raised to the minimum
      assert.equal(outbox.stats().quotaBytes, MIN_OUTBOX_QUOTA);
      const padding = 'x'.repeat(700);
      const committed: number[] = [];
      const delivered = new Set<number>();
      let largestChunk = 0;
      let n = 0;
      for (let round = 0; round < quotaRounds; round++) {
        const perChunk = 1 + (round % 7);
        for (let i = 0; i < perChunk; i++) outbox.add(line(`${++n} ${padding}`));
        outbox.commit();
        for (let i = 0; i < perChunk; i++) committed.push(n - perChunk + 1 + i);
        const names = storage.list(CHUNK_PREFIX);
        largestChunk = Math.max(largestChunk, Buffer.byteLength(storage.read(names.at(-1)!)!));
        const stored = storedChunkBytes(storage);
        assert.ok(stored <= MIN_OUTBOX_QUOTA + largestChunk, `round ${round}: ${stored} bytes stored`);
        // Every chunk here is far smaller than the quota, so the outbox keeps the quota itself at every moment.
        assert.ok(largestChunk < MIN_OUTBOX_QUOTA && stored <= MIN_OUTBOX_QUOTA, `round ${round}: ${stored} bytes stored`);
        assert.equal(outbox.stats().bytes, stored, 'the outbox’s own count matches the files');

        // Now and then the link is up for a moment: one small batch gets through.
        if (round % 40 === 39) {
          const batch = outbox.batch(5, ALL);
          for (const record of batch) delivered.add(record.seq);
          outbox.acknowledge(batch.at(-1)!.seq);
        }
        // And now and then the agent restarts.
        if (round % 50 === 49) outbox = createOutbox(storage, { quotaBytes: 1 });
      }
      const remaining = outbox.batch(ALL, ALL);
      assert.deepEqual(seqs(remaining), [...seqs(remaining)].sort((a, b) => a - b));
      for (const record of remaining) {
        assert.ok(!delivered.has(record.seq), `record ${record.seq} delivered twice`);
        delivered.add(record.seq);
      }
      // Oldest first: what survived is the newest stretch of records.
      assert.equal(remaining.at(-1)!.seq, n);
      const firstKept = remaining[0]!.seq;
      for (let seq = firstKept; seq <= n; seq++) assert.ok(delivered.has(seq), `record ${seq} inside the kept stretch is missing`);

      // History check: every record ever committed either reached the server or was counted as dropped.
      const lost = committed.filter((seq) => !delivered.has(seq));
      assert.ok(lost.length > 0, 'the test must actually overflow the quota');
      assert.equal(outbox.dropped(), lost.length);
      assert.equal(delivered.size + outbox.dropped(), committed.length);
      assert.equal(createOutbox(storage).dropped(), lost.length, 'the dropped count survives a reopen');
    });

    test('a commit that drops old chunks to make room keeps its own cursors across a reopen', () => {
      const storage = open();
      const outbox = createOutbox(storage, { quotaBytes: MIN_OUTBOX_QUOTA });
      let offset = 0;
      for (let i = 0; outbox.dropped() === 0; i++) {
        assert.ok(i < 1000, 'the quota never filled');
        outbox.add(line(`${i} ${'z'.repeat(2000)}`));
        offset += 2000;
        outbox.setCursor('log:pos', { offset });
        outbox.commit();
      }
      // The commit that just dropped the oldest chunk wrote its own chunk after that: its cursor is the one to resume from,
      // or the lines it holds would be read (and uploaded) a second time.
      const reopened = createOutbox(storage, { quotaBytes: MIN_OUTBOX_QUOTA });
      assert.deepEqual(reopened.cursor('log:pos'), { offset });
      assert.equal(reopened.dropped(), outbox.dropped());
    });

    test('a single chunk larger than the quota is kept (the newest always stays)', () => {
      const storage = open();
      const outbox = createOutbox(storage, { quotaBytes: MIN_OUTBOX_QUOTA });
      outbox.add(line('old'));
      outbox.commit();
      for (let i = 0; i < 100; i++) outbox.add(line('y'.repeat(1000)));
      outbox.commit();
      assert.equal(outbox.stats().chunks, 1);
      assert.equal(outbox.dropped(), 1);
      assert.equal(outbox.batch(ALL, ALL).length, 100);
    });
  });
}

describe('outbox properties', () => {
  type Op =
    | { op: 'add'; count: number; big: boolean }
    | { op: 'cursor'; value: number }
    | { op: 'commit' }
    | { op: 'ack'; index: number }
    | { op: 'ackBeyond'; by: number }
    | { op: 'reopen' }
    | { op: 'batch'; maxRecords: number; maxBytes: number };
  /** `filling`: mostly large records and few acknowledgements, so a small quota overflows often. */
  const opsArb = (filling: boolean): fc.Arbitrary<Op[]> =>
    fc.array(
      fc.oneof(
        { weight: 4, arbitrary: fc.record({ op: fc.constant('add' as const), count: fc.integer({ min: 1, max: 5 }), big: filling ? fc.constant(true) : fc.boolean() }) },
        { weight: filling ? 2 : 1, arbitrary: fc.record({ op: fc.constant('cursor' as const), value: fc.nat(1000) }) },
        { weight: 3, arbitrary: fc.constant({ op: 'commit' as const }) },
        { weight: filling ? 1 : 2, arbitrary: fc.record({ op: fc.constant('ack' as const), index: fc.nat(filling ? 3 : 30) }) },
        // While filling, acknowledging everything would empty the outbox before it ever overflows.
        { weight: filling ? 0 : 1, arbitrary: fc.record({ op: fc.constant('ackBeyond' as const), by: fc.integer({ min: 1, max: 50 }) }) },
        { weight: filling ? 2 : 1, arbitrary: fc.constant({ op: 'reopen' as const }) },
        { weight: 2, arbitrary: fc.record({ op: fc.constant('batch' as const), maxRecords: fc.integer({ min: 0, max: 8 }), maxBytes: fc.integer({ min: 1, max: 400 }) }) },
      ),
      // fast-check keeps arrays short by default; these histories need length to overflow and reopen.
      { maxLength: 80, size: 'max' },
    );
  const BIG = 'b'.repeat(8000);

  /**
   * Runs random operations against a model: the committed, unacknowledged records in order, and the
   * cursor of the last commit. With a small quota the outbox may drop from the front of that list
   * at a commit; whatever it drops must be exactly what `dropped()` adds.
   */
  function run(ops: readonly Op[], quotaBytes: number | undefined): void {
    const storage = createMemoryStorage();
    const options = quotaBytes === undefined ? {} : { quotaBytes };
    let outbox = createOutbox(storage, options);
    let pending: string[] = [];
    let buffered: string[] = [];
    let committedCursor: number | undefined;
    let cursor: number | undefined;
    let highestSeq = 0; // highest seq ever committed or acknowledged: new records must go above it
    let droppedSeen = 0;
    let nextId = 0;

    const check = () => {
      const all = outbox.batch(ALL, ALL);
      const got = lines(all);
      const lost = pending.length - got.length;
      assert.ok(lost >= 0, `batch returned more than was committed: ${got.length} > ${pending.length}`);
      assert.deepEqual(got, pending.slice(lost), 'what is left is the newest committed records, in order');
      assert.equal(outbox.dropped() - droppedSeen, lost, 'dropped() counts exactly the records that went');
      if (quotaBytes === undefined) assert.equal(lost, 0);
      droppedSeen = outbox.dropped();
      pending = got;
      const numbers = seqs(all);
      for (let i = 1; i < numbers.length; i++) assert.ok(numbers[i]! > numbers[i - 1]!, `out of order: ${numbers}`);
      assert.equal(outbox.stats().pendingRecords, pending.length);
      return all;
    };

    for (const step of ops) {
      switch (step.op) {
        case 'add':
          for (let i = 0; i < step.count; i++) {
            const id = `r${nextId++}${step.big ? BIG : ''}`;
            outbox.add(line(id));
            buffered.push(id);
          }
          break;
        case 'cursor':
          outbox.setCursor('log:pos', { value: step.value });
          cursor = step.value;
          break;
        case 'commit': {
          const before = highestSeq;
          outbox.commit();
          const added = buffered.length;
          pending = [...pending, ...buffered];
          buffered = [];
          committedCursor = cursor;
          const all = check();
          if (added > 0) {
            const fresh = seqs(all.slice(-added));
            assert.ok(fresh[0]! > before, `a new record (${fresh[0]}) was numbered at or below ${before}`);
            highestSeq = fresh.at(-1)!;
          }
          break;
        }
        case 'ack': {
          const all = check();
          if (all.length === 0) break;
          const upTo = Math.min(step.index, all.length - 1);
          outbox.acknowledge(all[upTo]!.seq);
          pending = pending.slice(upTo + 1);
          break;
        }
        case 'ackBeyond': {
          // Acknowledges everything committed and more; only when nothing is buffered, as a server can only
          // know of numbers this device gave out before.
          if (buffered.length > 0) break;
          highestSeq += step.by;
          outbox.acknowledge(highestSeq);
          pending = [];
          break;
        }
        case 'reopen':
          outbox = createOutbox(storage, options);
          buffered = [];
          cursor = committedCursor;
          assert.equal(outbox.dropped(), droppedSeen, 'the dropped count survives a reopen');
          break;
        case 'batch': {
          const some = outbox.batch(step.maxRecords, step.maxBytes);
          const expected = pending.slice(0, Math.max(1, step.maxRecords));
          assert.deepEqual(lines(some), expected.slice(0, some.length), 'a batch is a prefix of what is pending');
          if (pending.length > 0) assert.ok(some.length >= 1, 'at least one record');
          assert.ok(some.length <= Math.max(1, step.maxRecords));
          break;
        }
      }
      assert.deepEqual(outbox.cursor('log:pos'), cursor === undefined ? undefined : { value: cursor }, `cursor after ${step.op}`);
    }
    check();
  }

  test('every committed, unacknowledged record is returned by batch exactly once, in order', () => {
    fc.assert(
      fc.property(opsArb(false), (ops) => run(ops, undefined)),
      { numRuns: 300 },
    );
  });

  test('with a small quota: what batch returns is the newest committed records, and dropped() counts the rest exactly', () => {
    fc.assert(
      fc.property(opsArb(true), (ops) => run(ops, MIN_OUTBOX_QUOTA)),
      { numRuns: 300 },
    );
  });
});
