import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TelemetryRecord } from '../../protocol/messages.ts';
import { createRandom, type Random } from '../../sim/random.ts';
import { isValid } from '../../protocol/validate.ts';
import { createOutbox, type Outbox } from '../outbox/outbox.ts';
import { beginTrial, bootDecision, commit, initialSlotsState, installTarget, SlotsState } from '../slots/slots.ts';
import { createPowerCutFileSystem, PowerCut, type PowerCutFileSystem } from './power-cut-fs.ts';
import { createStorage, readJson, writeJson, type FileSystem, type Storage } from './storage.ts';

// Power cuts at hundreds of points of a device's life: the agent's durable writes (telemetry
// outbox, desired state, the A/B slots state) run on the power-cut model of the file system, which
// at each crash keeps only what was synced and tears or drops the rest. After every cut the store
// must reopen, every acknowledged record must reach the server exactly once and in order, and the
// desired state and slots state must read back as the old document or the new one. The same
// campaign with one sync removed must fail.

const SOURCE = 'log:app';
const DESIRED = 'desired.json';
/** The slots state document, kept the way the launcher's state store keeps it (slots/file-backend.ts). */
const SLOTS = 'state.json';
const DOCUMENTS = [DESIRED, SLOTS];
const AT = '2025-01-01T00:00:00.000Z';
const STEPS = 80;
const SCENARIOS = 200;
/** Lines whose number is a multiple of this are blank, skipped by the reader: a read may move only its cursor. */
const NOISE = 5;

/** What the device does, step by step; drawn once per scenario so a crashed run can redo the same work. */
type Step =
  | { kind: 'read'; lines: number }
  | { kind: 'sample'; count: number }
  | { kind: 'desired' }
  /** The launcher's next move: begin a trial, count a boot of it, or commit it once it said it is healthy. */
  | { kind: 'slots'; healthy: boolean }
  | { kind: 'upload'; maxRecords: number };

function script(random: Random): Step[] {
  return Array.from({ length: STEPS }, (): Step => {
    const roll = random.next();
    if (roll < 0.4) return { kind: 'read', lines: 1 + random.int(4) };
    if (roll < 0.6) return { kind: 'sample', count: 1 + random.int(3) };
    if (roll < 0.67) return { kind: 'desired' };
    if (roll < 0.74) return { kind: 'slots', healthy: random.next() < 0.4 };
    return { kind: 'upload', maxRecords: 1 + random.int(8) };
  });
}

/** The server's side, with its dedup rule: it keeps the records above its high-water mark and answers the mark. */
type Sink = { records: TelemetryRecord[]; mark: number };
function receive(sink: Sink, records: readonly TelemetryRecord[]): { ackedSeq: number } {
  const fresh = records.filter((r) => r.seq > sink.mark).sort((a, b) => a.seq - b.seq);
  sink.records.push(...fresh);
  sink.mark = Math.max(sink.mark, fresh.at(-1)?.seq ?? 0);
  return { ackedSeq: sink.mark };
}
const keyOf = (r: TelemetryRecord) => (r.kind === 'log' ? r.line : r.kind === 'metric' ? `sample ${r.value}` : `event ${r.message}`);

/** What the test knows happened: the history the invariants are checked against. */
type World = {
  sink: Sink;
  /** Keys of the records whose commit returned, in commit order. */
  acked: string[];
  samples: number;
  generation: number;
  /** Per whole-document file: the bytes of the last write that returned, and of the one under way. */
  documents: Map<string, { committed: string | null; inFlight: string | null }>;
  /** Whole-document writes that returned, by file. */
  writes: Map<string, number>;
  /** The next step to run: a step cut short is run again after the reboot. */
  step: number;
};

type Doc = { generation: number; note: string };
const isDoc = (v: unknown): v is Doc => typeof v === 'object' && v !== null && typeof (v as Doc).generation === 'number';
const isSlotsState = (v: unknown): v is SlotsState => isValid(SlotsState, v);

/** Writes a whole document, recording in the history what may be on disk meanwhile. */
function persist(storage: Storage, world: World, name: string, value: unknown): void {
  // The exact bytes `writeJson` stores, captured rather than re-derived.
  let text = '';
  writeJson({ read: () => null, write: (_name, t) => void (text = t), remove() {}, list: () => [] }, name, value);
  const document = world.documents.get(name)!;
  document.inFlight = text;
  writeJson(storage, name, value);
  world.documents.set(name, { committed: text, inFlight: null });
  world.writes.set(name, (world.writes.get(name) ?? 0) + 1);
}

function upload(outbox: Outbox, world: World, maxRecords: number): boolean {
  const records = outbox.batch(maxRecords, 1 << 20);
  if (records.length === 0) return false;
  outbox.acknowledge(receive(world.sink, records).ackedSeq);
  return true;
}

/** One boot of the device: reopen the store, then run the script from where the world stands. */
function boot(fs: FileSystem, steps: readonly Step[], world: World, drain: boolean): void {
  const storage = createStorage(fs);
  const outbox = createOutbox(storage);
  readJson(storage, DESIRED, isDoc);
  readJson(storage, SLOTS, isSlotsState);
  for (; world.step < steps.length; world.step++) {
    const step = steps[world.step]!;
    if (step.kind === 'read') {
      const cursor = outbox.cursor(SOURCE);
      const next = typeof cursor?.next === 'number' ? cursor.next : 1;
      const keys: string[] = [];
      for (let id = next; id < next + step.lines; id++) {
        if (id % NOISE === 0) continue;
        keys.push(`line ${id}`);
        outbox.add({ kind: 'log', at: AT, component: 'app', line: `line ${id}` });
      }
      outbox.setCursor(SOURCE, { next: next + step.lines });
      outbox.commit();
      world.acked.push(...keys);
    } else if (step.kind === 'sample') {
      // Samples cannot be read again: once committed, the outbox holds the only copy.
      const keys: string[] = [];
      for (let i = 0; i < step.count; i++) {
        const value = ++world.samples;
        keys.push(`sample ${value}`);
        outbox.add({ kind: 'metric', at: AT, name: 'sample', value });
      }
      outbox.commit();
      world.acked.push(...keys);
    } else if (step.kind === 'desired') {
      persist(storage, world, DESIRED, { generation: ++world.generation, note: 'x'.repeat(world.generation % 40) });
    } else if (step.kind === 'slots') {
      const nowMs = 1_000_000 + world.step * 1000;
      const state = readJson(storage, SLOTS, isSlotsState) ?? initialSlotsState();
      const slot = installTarget(state);
      if (slot) {
        const version = `v${world.step}`;
        persist(storage, world, SLOTS, beginTrial(state, { slot, version, sha256: version.padEnd(64, '0') }, nowMs, 3_600_000));
      } else {
        // The boot is counted durably before it happens; a healthy trial is committed.
        const decision = bootDecision(state, nowMs, 3);
        persist(storage, world, SLOTS, decision.state);
        if (step.healthy && decision.boot !== null) persist(storage, world, SLOTS, commit(decision.state, decision.boot, nowMs));
      }
    } else {
      upload(outbox, world, step.maxRecords);
    }
  }
  if (drain) while (upload(outbox, world, 50));
}

type Report = {
  crashPoints: number;
  /** Crash points that fell inside an operation of the workload or of reopening (the rest hit a quiet moment). */
  midOperation: number;
  acked: number;
  losses: number;
  duplicates: number;
  outOfOrder: number;
  /** Log lines the reader passed over that never reached the server. */
  logGaps: number;
  /** Desired state or slots state read back as neither the old document nor the new one. */
  documentViolations: number;
  documentWrites: Map<string, number>;
  reopenFailures: string[];
};

/** `wrap` stands between the code and the disk model: identity for the real check, a liar for the sensitivity check. */
function campaign(seed: number, wrap: (fs: FileSystem) => FileSystem): Report {
  const report: Report = { crashPoints: 0, midOperation: 0, acked: 0, losses: 0, duplicates: 0, outOfOrder: 0, logGaps: 0, documentViolations: 0, documentWrites: new Map(), reopenFailures: [] };
  const random = createRandom(seed);
  const fresh = (): World => ({
    sink: { records: [], mark: 0 },
    acked: [],
    samples: 0,
    generation: 0,
    documents: new Map(DOCUMENTS.map((name) => [name, { committed: null, inFlight: null }])),
    writes: new Map(),
    step: 0,
  });

  for (let scenario = 0; scenario < SCENARIOS; scenario++) {
    const steps = script(createRandom(seed * 7919 + scenario));
    // How many operations the whole run takes, so crash points spread over all of it.
    const probe = createPowerCutFileSystem();
    boot(wrap(probe), steps, fresh(), true);
    const total = probe.operations();

    const world = fresh();
    let fs: PowerCutFileSystem = createPowerCutFileSystem();
    const cuts = 1 + random.int(3);
    for (let cut = 0; cut < cuts; cut++) {
      // The first cut of each scenario is stratified over the whole run; later ones land in what remains, reopening included.
      const at = cut === 0 ? Math.floor(((scenario + random.next()) / SCENARIOS) * total) : random.int(Math.ceil((total * (steps.length - world.step)) / steps.length) + 8);
      fs.crashAfter(at);
      try {
        boot(wrap(fs), steps, world, false);
      } catch (error) {
        if (!(error instanceof PowerCut)) report.reopenFailures.push(`scenario ${scenario}, cut ${cut} at ${at}: ${(error as Error).stack}`);
      }
      if (fs.dead()) report.midOperation++;
      report.crashPoints++;
      fs = fs.crash(random.next);
      for (const [name, { committed, inFlight }] of world.documents) {
        const text = fs.read(name)?.toString('utf8') ?? null;
        if (text !== committed && (inFlight === null || text !== inFlight)) report.documentViolations++;
        world.documents.set(name, { committed: text, inFlight: null });
      }
    }
    try {
      boot(wrap(fs), steps, world, true);
    } catch (error) {
      report.reopenFailures.push(`scenario ${scenario}, final boot: ${(error as Error).stack}`);
      continue;
    }
    check(world, report);
  }
  return report;
}

/** The history check: what was acknowledged against what the server holds. */
function check(world: World, report: Report): void {
  const arrived = world.sink.records.map(keyOf);
  const counts = new Map<string, number>();
  for (const key of arrived) counts.set(key, (counts.get(key) ?? 0) + 1);
  for (const n of counts.values()) if (n > 1) report.duplicates += n - 1;
  const acked = new Set(world.acked);
  report.acked += world.acked.length;
  for (const [name, n] of world.writes) report.documentWrites.set(name, (report.documentWrites.get(name) ?? 0) + n);
  for (const key of world.acked) if (!counts.has(key)) report.losses++;
  const ackedInArrival = [...new Set(arrived.filter((key) => acked.has(key)))];
  const stillThere = world.acked.filter((key) => counts.has(key));
  if (ackedInArrival.join('\n') !== stillThere.join('\n')) report.outOfOrder++;
  // Every line the reader passed over arrived (a line cut off before its commit is read again).
  const lines = arrived.filter((key) => key.startsWith('line ')).map((key) => Number(key.slice(5)));
  const last = Math.max(0, ...lines);
  const seen = new Set(lines);
  for (let id = 1; id <= last; id++) if (id % NOISE !== 0 && !seen.has(id)) report.logGaps++;
}

const show = (r: Report) =>
  `${r.crashPoints} crash points (${r.midOperation} inside an operation), ${r.acked} acknowledged records, ${[...r.documentWrites].map(([name, n]) => `${n} writes of ${name}`).join(', ')}; ${r.losses} lost, ${r.duplicates} duplicated, ${r.outOfOrder} runs out of order, ${r.logGaps} log lines missing, ${r.documentViolations} documents neither old nor new, ${r.reopenFailures.length} failed reopens`;

const SEED = Number(process.env.POWER_CUT_SEED ?? Date.now() % 1_000_000);

describe('power cuts', () => {
  test('across hundreds of crash points no acknowledged record is lost or duplicated, the store reopens, desired and slots state are old or new', () => {
    const report = campaign(SEED, (fs) => fs);
    console.log(`power cut (seed ${SEED}; POWER_CUT_SEED=${SEED} repeats it): ${show(report)}`);
    assert.ok(report.crashPoints >= 200, `only ${report.crashPoints} crash points`);
    assert.ok(report.midOperation >= 200, `only ${report.midOperation} crash points inside an operation`);
    assert.deepEqual(report.reopenFailures, []);
    assert.deepEqual(
      { losses: report.losses, duplicates: report.duplicates, outOfOrder: report.outOfOrder, logGaps: report.logGaps, documentViolations: report.documentViolations },
      { losses: 0, duplicates: 0, outOfOrder: 0, logGaps: 0, documentViolations: 0 },
    );
  });

  // Sensitivity: the same campaign on a disk that lies about one kind of sync must fail the check.
  const liars: [string, (fs: FileSystem) => FileSystem][] = [
    ['fsync of a file does nothing', (fs) => ({ ...fs, fsync() {} })],
    ['syncing the directory does nothing', (fs) => ({ ...fs, syncDir() {} })],
  ];
  for (const [name, wrap] of liars) {
    test(`sensitivity: when ${name}, the check finds lost records and torn documents`, () => {
      const report = campaign(SEED, wrap);
      console.log(`power cut, ${name} (seed ${SEED}): ${show(report)}`);
      assert.ok(report.losses > 0, `the check did not notice: ${show(report)}`);
      assert.ok(report.documentViolations > 0, `the document check did not notice: ${show(report)}`);
    });
  }
});
