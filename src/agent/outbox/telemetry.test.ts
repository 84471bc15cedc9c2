import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { DriftlessError } from '../../protocol/errors.ts';
import type { TelemetryBatch, TelemetryRecord } from '../../protocol/messages.ts';
import type { Instance, LogRead, RuntimeDriver } from '../drivers/driver.ts';
import { createMemoryStorage } from '../storage/memory-storage.ts';
import type { Storage } from '../storage/storage.ts';
import { backoffDelayMs, createContactGate, type Backoff } from '../sync/backoff.ts';
import { createOutbox, MIN_OUTBOX_QUOTA } from './outbox.ts';
import { createTelemetry, type LogSource } from './telemetry.ts';

const START = Date.parse('2025-06-01T12:00:00.000Z');
const NO_JITTER: Backoff = { baseMs: 1_000, capMs: 60_000, jitter: false };

/** A runtime whose instances' output is an in-memory list of lines per key; the cursor is an index into it. */
function createFakeLogDriver() {
  const output = new Map<string, string[]>();
  let failing = false;
  const reads: { key: string; maxBytes: number; maxLines: number | undefined }[] = [];
  const driver: RuntimeDriver = {
    kind: 'process',
    list: async () => [],
    create: async () => {},
    start: async () => {},
    remove: async () => {},
    close: async () => {},
    async readLogs(key, cursor, maxBytes, maxLines): Promise<LogRead> {
      reads.push({ key, maxBytes, maxLines });
      if (failing) throw new Error('output file unreadable');
      const lines = output.get(key) ?? [];
      const from = typeof cursor?.index === 'number' ? cursor.index : 0;
      const out: string[] = [];
      let bytes = 0;
      for (let i = from; i < lines.length && out.length < (maxLines ?? Infinity); i++) {
        const size = Buffer.byteLength(lines[i]!) + 1;
        if (out.length > 0 && bytes + size > maxBytes) break;
        out.push(lines[i]!);
        bytes += size;
      }
      return { lines: out, cursor: { index: from + out.length } };
    },
  };
  return {
    driver,
    reads,
    write(key: string, ...lines: string[]) {
      output.set(key, [...(output.get(key) ?? []), ...lines]);
    },
    failReads(on: boolean) {
      failing = on;
    },
  };
}

/**
 * The server's side of the protocol, as the store does it: records above the device's mark are
 * new, the rest are resends. `down` makes it unreachable; `loseAnswers` stores but loses the reply.
 */
function createFakeServer() {
  const stored: TelemetryRecord[] = [];
  const calls: TelemetryBatch[] = [];
  let mark = 0;
  let dropped = 0;
  const server = {
    down: false,
    loseAnswers: false,
    refuse: null as DriftlessError | null,
    stored,
    calls,
    dropped: () => dropped,
    async upload(batch: TelemetryBatch): Promise<{ ackedSeq: number }> {
      calls.push(structuredClone(batch));
      if (server.down) throw new DriftlessError('unavailable', 'cannot reach the server at http://server: ECONNREFUSED');
      if (server.refuse) throw server.refuse;
      for (const record of batch.records) {
        if (record.seq <= mark) continue;
        stored.push(record);
        mark = record.seq;
      }
      dropped = Math.max(dropped, batch.dropped);
      if (server.loseAnswers) throw new DriftlessError('unavailable', 'the connection was reset');
      return { ackedSeq: mark };
    },
  };
  return server;
}

function setup(opts: { storage?: Storage; quotaBytes?: number; random?: () => number; backoff?: Backoff; hostMetrics?: (() => Record<string, number>) | null } = {}) {
  const storage = opts.storage ?? createMemoryStorage();
  const clock = { ms: START };
  const outbox = createOutbox(storage, opts.quotaBytes === undefined ? {} : { quotaBytes: opts.quotaBytes });
  const gate = createContactGate(opts.backoff ?? NO_JITTER, opts.random ?? (() => 0.5));
  const server = createFakeServer();
  const logged: string[] = [];
  const telemetry = createTelemetry({
    outbox,
    upload: (batch) => server.upload(batch),
    gate,
    now: () => clock.ms,
    log: (message) => logged.push(message),
    hostMetrics: opts.hostMetrics ?? null,
    metricsEveryMs: 60_000,
  });
  return { storage, clock, outbox, gate, server, logged, telemetry };
}

const logLines = (records: readonly TelemetryRecord[], component?: string) =>
  records.filter((r) => r.kind === 'log' && (component === undefined || r.component === component)).map((r) => (r.kind === 'log' ? r.line : ''));

describe('telemetry', () => {
  test('lines are collected while uploads fail, and all arrive in order exactly once when uploads succeed', async () => {
    const t = setup();
    const fake = createFakeLogDriver();
    const sources: LogSource[] = [
      { key: 'pos.web', component: 'web', driver: fake.driver },
      { key: 'pos.db', component: 'db', driver: fake.driver },
    ];
    t.server.down = true;
    const written: Record<string, string[]> = { web: [], db: [] };
    for (let minute = 0; minute < 30; minute++) {
      for (const [key, component] of [['pos.web', 'web'], ['pos.db', 'db']] as const) {
        const lines = Array.from({ length: 1 + (minute % 5) }, (_, i) => `${component} ${minute}.${i}`);
        fake.write(key, ...lines);
        written[component]!.push(...lines);
      }
      await t.telemetry.collect(sources);
      await t.telemetry.upload();
      t.clock.ms += 60_000;
    }
    assert.equal(t.server.stored.length, 0, 'nothing got through while the server was down');
    assert.ok(t.telemetry.pending());
    assert.ok(t.server.calls.length > 0);

    t.server.down = false;
    t.clock.ms += NO_JITTER.capMs; // past any back-off
    await t.telemetry.upload();
    assert.deepEqual(logLines(t.server.stored, 'web'), written.web);
    assert.deepEqual(logLines(t.server.stored, 'db'), written.db);
    assert.deepEqual(
      t.server.stored.map((r) => r.seq),
      t.server.stored.map((_, i) => i + 1),
      'one gapless sequence across components',
    );
    assert.equal(t.telemetry.pending(), false);
    assert.equal(t.outbox.stats().pendingRecords, 0);
  });

  test('a lost answer makes the device send again; the server’s mark keeps every record once', async () => {
    const t = setup();
    const fake = createFakeLogDriver();
    const sources: LogSource[] = [{ key: 'pos.web', component: 'web', driver: fake.driver }];
    fake.write('pos.web', 'a', 'b', 'c');
    await t.telemetry.collect(sources);
    t.server.loseAnswers = true;
    await t.telemetry.upload();
    assert.deepEqual(logLines(t.server.stored), ['a', 'b', 'c'], 'stored, but the device never heard');
    assert.ok(t.telemetry.pending());

    t.server.loseAnswers = false;
    fake.write('pos.web', 'd');
    await t.telemetry.collect(sources);
    t.clock.ms += NO_JITTER.capMs;
    await t.telemetry.upload();
    assert.deepEqual(logLines(t.server.calls.at(-1)!.records), ['a', 'b', 'c', 'd'], 'the resend holds the unacknowledged records');
    assert.deepEqual(logLines(t.server.stored), ['a', 'b', 'c', 'd']);
    assert.equal(t.telemetry.pending(), false);
  });

  test('while backing off, no upload is attempted', async () => {
    const t = setup();
    const fake = createFakeLogDriver();
    fake.write('pos.web', 'a');
    await t.telemetry.collect([{ key: 'pos.web', component: 'web', driver: fake.driver }]);
    t.server.down = true;

    await t.telemetry.upload();
    assert.equal(t.server.calls.length, 1);
    assert.equal(t.gate.failures(), 1);
    const wait = t.gate.waitMs(t.clock.ms);
    assert.equal(wait, NO_JITTER.baseMs);

    t.clock.ms += wait - 1;
    await t.telemetry.upload();
    assert.equal(t.server.calls.length, 1, 'one millisecond early: no attempt');

    t.clock.ms += 1;
    await t.telemetry.upload();
    assert.equal(t.server.calls.length, 2, 'due: one attempt');
    assert.equal(t.gate.failures(), 2);
    assert.equal(t.gate.waitMs(t.clock.ms), 2 * NO_JITTER.baseMs, 'the wait doubles');

    t.server.down = false;
    t.clock.ms += 2 * NO_JITTER.baseMs;
    await t.telemetry.upload();
    assert.equal(t.gate.failures(), 0, 'a success resets the back-off');
    assert.deepEqual(logLines(t.server.stored), ['a']);
  });

  test('a refusal that is not about load or the link is logged, not backed off', async () => {
    const t = setup();
    const fake = createFakeLogDriver();
    fake.write('pos.web', 'a');
    await t.telemetry.collect([{ key: 'pos.web', component: 'web', driver: fake.driver }]);
    t.server.refuse = new DriftlessError('invalid-input', 'request body: /records/0/line: too long');
    await t.telemetry.upload();
    assert.equal(t.gate.failures(), 0);
    assert.equal(t.gate.waitMs(t.clock.ms), 0);
    assert.match(t.logged.join('\n'), /telemetry not uploaded: request body: \/records\/0\/line: too long/);
  });

  test('a record the server refuses for good is given up alone (and counted); the rest still arrive in order', async () => {
    const t = setup();
    const fake = createFakeLogDriver();
    const lines = Array.from({ length: 40 }, (_, i) => (i === 23 ? 'poison' : `line ${i}`));
    fake.write('pos.web', ...lines);
    await t.telemetry.collect([{ key: 'pos.web', component: 'web', driver: fake.driver }]);
    const upload = t.server.upload;
    t.server.upload = async (batch) => {
      if (batch.records.some((r) => r.kind === 'log' && r.line === 'poison')) {
        t.server.calls.push(structuredClone(batch));
        throw new DriftlessError('invalid-input', 'request body: records[0].line: refused');
      }
      return upload(batch);
    };
    for (let pass = 0; pass < 3 && t.telemetry.pending(); pass++) await t.telemetry.upload();
    assert.deepEqual(logLines(t.server.stored), lines.filter((l) => l !== 'poison'), 'everything but the refused record, in order');
    assert.equal(t.outbox.dropped(), 1);
    assert.equal(t.server.dropped(), 1, 'the server hears that one record was given up');
    assert.equal(t.telemetry.pending(), false);
    assert.ok(t.server.calls.length < 20, `narrowed down in few calls, not one per record: ${t.server.calls.length}`);
  });

  test('the dropped total is sent even when no record is left to send, once', async () => {
    const storage = createMemoryStorage();
    {
      // An earlier run filled the outbox while offline; then what was left got through.
      const outbox = createOutbox(storage, { quotaBytes: MIN_OUTBOX_QUOTA });
      for (let i = 0; i < 100; i++) {
        outbox.add({ kind: 'log', at: new Date(START).toISOString(), component: 'web', line: 'x'.repeat(2000) });
        outbox.commit();
      }
      assert.ok(outbox.dropped() > 0);
      outbox.acknowledge(100);
      assert.equal(outbox.stats().pendingRecords, 0);
    }
    const t = setup({ storage, quotaBytes: MIN_OUTBOX_QUOTA });
    const dropped = t.outbox.dropped();
    assert.ok(t.telemetry.pending(), 'an unreported dropped total counts as pending');
    await t.telemetry.upload();
    assert.deepEqual(t.server.calls, [{ records: [], dropped }]);
    assert.equal(t.server.dropped(), dropped);
    assert.equal(t.telemetry.pending(), false);
    await t.telemetry.upload();
    assert.equal(t.server.calls.length, 1, 'reported once, not on every pass');
  });

  test('records dropped while offline are counted and the count reaches the server with the survivors', async () => {
    const t = setup({ quotaBytes: MIN_OUTBOX_QUOTA });
    const fake = createFakeLogDriver();
    const sources: LogSource[] = [{ key: 'pos.web', component: 'web', driver: fake.driver }];
    t.server.down = true;
    let n = 0;
    for (let round = 0; round < 40; round++) {
      fake.write('pos.web', ...Array.from({ length: 20 }, () => `${++n} ${'y'.repeat(300)}`));
      await t.telemetry.collect(sources);
      await t.telemetry.upload();
      t.clock.ms += 10_000;
      assert.ok(t.outbox.stats().bytes <= MIN_OUTBOX_QUOTA, `round ${round}: ${t.outbox.stats().bytes} bytes`);
    }
    t.server.down = false;
    t.clock.ms += NO_JITTER.capMs;
    await t.telemetry.upload();
    const arrived = logLines(t.server.stored).map((l) => Number(l.split(' ')[0]));
    assert.ok(t.server.dropped() > 0);
    assert.equal(arrived.length + t.server.dropped(), n, 'every line either arrived or was counted as dropped');
    // Oldest first: the survivors are the newest lines, without a hole.
    assert.deepEqual(arrived, Array.from({ length: arrived.length }, (_, i) => n - arrived.length + 1 + i));
  });

  test('collection resumes from the committed cursor after a restart: no line read twice or skipped', async () => {
    const storage = createMemoryStorage();
    const fake = createFakeLogDriver();
    const sources: LogSource[] = [{ key: 'pos.web', component: 'web', driver: fake.driver }];
    const first = setup({ storage });
    fake.write('pos.web', 'a', 'b');
    await first.telemetry.collect(sources);
    fake.write('pos.web', 'c');

    const second = setup({ storage }); // the agent restarted
    await second.telemetry.collect(sources);
    await second.telemetry.upload();
    assert.deepEqual(logLines(second.server.stored), ['a', 'b', 'c']);
  });

  test('a chatty source is read in several reads sized for one chunk each', async () => {
    const t = setup({ quotaBytes: MIN_OUTBOX_QUOTA });
    const fake = createFakeLogDriver();
    // About 12 KB of output, some 26 KB as records: several chunks, within the quota.
    const lines = Array.from({ length: 200 }, (_, i) => `line ${i} ${'z'.repeat(50)}`);
    fake.write('pos.web', ...lines);
    await t.telemetry.collect([{ key: 'pos.web', component: 'web', driver: fake.driver }]);
    assert.ok(fake.reads.length > 2, `${fake.reads.length} reads`);
    for (const read of fake.reads) assert.ok(read.maxBytes <= t.outbox.chunkBytes, 'a read fits one chunk');
    assert.ok(t.outbox.stats().chunks > 1);
    await t.telemetry.upload();
    assert.deepEqual(logLines(t.server.stored), lines);
    assert.equal(t.outbox.dropped(), 0);
  });

  test('an over-long line is cut to what the protocol accepts', async () => {
    const t = setup();
    const fake = createFakeLogDriver();
    fake.write('pos.web', 'q'.repeat(20_000));
    await t.telemetry.collect([{ key: 'pos.web', component: 'web', driver: fake.driver }]);
    await t.telemetry.upload();
    assert.equal(logLines(t.server.stored)[0]!.length, 8192);
  });

  test('a source whose output cannot be read is logged and the others are still collected', async () => {
    const t = setup();
    const broken = createFakeLogDriver();
    broken.failReads(true);
    const fine = createFakeLogDriver();
    fine.write('pos.db', 'ok');
    await t.telemetry.collect([
      { key: 'pos.web', component: 'web', driver: broken.driver },
      { key: 'pos.db', component: 'db', driver: fine.driver },
    ]);
    assert.match(t.logged.join('\n'), /output of pos\.web not read: output file unreadable/);
    await t.telemetry.upload();
    assert.deepEqual(logLines(t.server.stored), ['ok']);
  });

  test('metrics are sampled once per interval: host figures and each instance’s up and restarts', async () => {
    let hostCalls = 0;
    const t = setup({
      hostMetrics: () => {
        hostCalls++;
        return { cpu_percent: 12.5, memory_used_bytes: 1024 };
      },
    });
    const instances = [
      { key: 'pos.web', component: 'web', running: true, restarts: 2 },
      { key: 'pos.db', component: 'db', running: false },
    ] as Instance[];
    t.telemetry.sample(instances);
    t.clock.ms += 59_999;
    t.telemetry.sample(instances);
    assert.equal(hostCalls, 1, 'not due yet');
    t.clock.ms += 1;
    t.telemetry.sample(instances);
    assert.equal(hostCalls, 2);

    await t.telemetry.upload();
    const metrics = t.server.stored.filter((r) => r.kind === 'metric');
    assert.equal(metrics.length, 2 * 5);
    const first = metrics.slice(0, 5).map((r) => (r.kind === 'metric' ? [r.component ?? null, r.name, r.value] : null));
    assert.deepEqual(first, [
      [null, 'cpu_percent', 12.5],
      [null, 'memory_used_bytes', 1024],
      ['web', 'up', 1],
      ['web', 'restarts', 2],
      ['db', 'up', 0],
    ]);
    assert.equal(metrics[0]!.at, new Date(START).toISOString());
    assert.equal(metrics[5]!.at, new Date(START + 60_000).toISOString());
  });
});

describe('backoff', () => {
  test('full jitter: the delay lies in [0, min(cap, base·2^(n-1)))', () => {
    const backoff: Backoff = { baseMs: 1_000, capMs: 300_000, jitter: true };
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (failures, r) => {
        const ceiling = Math.min(backoff.capMs, backoff.baseMs * 2 ** (failures - 1));
        const delay = backoffDelayMs(backoff, failures, () => r, null);
        assert.ok(Number.isInteger(delay));
        assert.ok(delay >= 0 && delay < ceiling, `${delay} outside [0, ${ceiling})`);
      }),
    );
    assert.equal(backoffDelayMs(backoff, 1, () => 0, null), 0);
    assert.equal(backoffDelayMs(backoff, 3, () => 0.999999, null), 3_999);
    assert.equal(backoffDelayMs(backoff, 1000, () => 0.5, null), 150_000, 'capped, even after very many failures');
  });

  test('without jitter the delay is exact: base, doubling, capped', () => {
    const backoff: Backoff = { baseMs: 500, capMs: 10_000, jitter: false };
    const never = () => assert.fail('no random draw without jitter');
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 50].map((n) => backoffDelayMs(backoff, n, never, null)),
      [500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000],
    );
  });

  test('Retry-After is a floor, never a ceiling', () => {
    const jittered: Backoff = { baseMs: 1_000, capMs: 300_000, jitter: true };
    assert.equal(backoffDelayMs(jittered, 1, () => 0, 30_000), 30_000, 'the server asked for 30 s: not sooner');
    assert.equal(backoffDelayMs(jittered, 9, () => 0.5, 30_000), 128_000, 'a longer own delay stands');
    assert.equal(backoffDelayMs({ ...jittered, jitter: false }, 1, Math.random, 5_000), 5_000);
    assert.equal(backoffDelayMs({ ...jittered, jitter: false }, 1, Math.random, 0), 1_000);
  });

  test('the contact gate backs off only for an unreachable or busy server', () => {
    const gate = createContactGate(NO_JITTER, () => 0.5);
    assert.equal(gate.waitMs(START), 0);

    for (const error of [new DriftlessError('invalid-input', 'bad'), new DriftlessError('forbidden', 'no'), new DriftlessError('internal', 'boom'), new Error('TypeError'), 'text']) {
      assert.equal(gate.failed(error, START), false, String(error));
    }
    assert.equal(gate.failures(), 0);
    assert.equal(gate.waitMs(START), 0);

    assert.equal(gate.failed(new DriftlessError('unavailable', 'ECONNREFUSED'), START), true);
    assert.equal(gate.waitMs(START), 1_000);
    assert.equal(gate.waitMs(START + 400), 600);
    assert.equal(gate.waitMs(START + 5_000), 0);

    assert.equal(gate.failed(new DriftlessError('busy', 'shedding load', 20_000), START + 5_000), true);
    assert.equal(gate.failures(), 2);
    assert.equal(gate.waitMs(START + 5_000), 20_000, 'Retry-After wins over the 2 s of the second failure');

    gate.succeeded();
    assert.equal(gate.failures(), 0);
    assert.equal(gate.waitMs(START + 5_000), 0);
  });

  test('with jitter, many devices failing at once spread their retries', () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const waits = Array.from({ length: 1000 }, () => {
      const gate = createContactGate({ baseMs: 1_000, capMs: 300_000, jitter: true }, random);
      for (let i = 0; i < 6; i++) gate.failed(new DriftlessError('unavailable', 'down'), START);
      return gate.waitMs(START);
    });
    for (const wait of waits) assert.ok(wait >= 0 && wait < 32_000);
    const seconds = new Set(waits.map((w) => Math.floor(w / 1000)));
    assert.equal(seconds.size, 32, 'every second of the window gets some retries');
  });
});
