import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DeviceView } from '../../src/protocol/resources.ts';
import { findProcesses, isAlive } from '../support/child.ts';
import { assertBusybox, BUSYBOX, componentOf, createFleet, type AgentHandle, type Fleet, uniqueTag } from '../support/fleet.ts';
import { createLan, degradeLink, linkShaping, type Lan, type LanHost, type LinkDegradation } from '../support/netns.ts';
import { requestJson, tapHttpRequests, type TappedRequest } from '../support/http-tap.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { waitFor, waitUntil } from '../support/wait.ts';

// Partitions (PRODUCT.md, promise 4): one agent on its own host (a network namespace with a veth
// link to the server) runs a component that prints a numbered line every 100 ms. The link is cut
// for minutes, then degraded (random loss, a bandwidth cap, latency) for a minute; meanwhile the
// agent is killed with SIGKILL and started again, and Deployments change. The server must end up
// with every line exactly once and in order, the workload must never have stopped, and the changes
// made while the device was away must be applied once it is back.
//
// The agent reaches the server through a TCP proxy on the LAN (latency for the degraded case, and
// a way to hold the server's answers back so the agent can be killed in the middle of an upload:
// after the server stored a batch, before the agent learnt it).

const CUT_SECONDS = positiveSeconds('DRIFTLESS_PARTITION_CUT_SECONDS', 180); // "several minutes": three
const DEGRADE_SECONDS = positiveSeconds('DRIFTLESS_PARTITION_DEGRADE_SECONDS', 60);
const LATENCY_MS = 200;
const LOSS_PERCENT = 30;
const RATE_KBIT = 256;

const tag = uniqueTag();
const device = `part-${tag}`;
const site = `part-site-${tag}`;
const COUNTER = `counter-${tag}`;
const SIDE = `side-${tag}`;
const COUNTER_SCRIPT = 'i=0; while true; do i=$((i+1)); echo "line $i"; sleep 0.1; done';
/** The process driver writes this line into a component's output when it starts a run. */
const START_MARKER = '--- driftless: starting ';

function positiveSeconds(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!(value > 0)) throw new Error(`${name} must be a positive number of seconds, got "${raw}"`);
  return value;
}

const deployment = (name: string, version: string, component: string) => `apiVersion: driftless/v1
kind: Deployment
metadata: { name: ${name} }
spec:
  selector: { matchLabels: { tier: part-${tag} } }
  # One device, no fleet-wide halt: this test is about the device's own behaviour across partitions.
  strategy: { waves: [{ percent: 100 }], maxFailurePercent: 100 }
  template:
    version: "${version}"
    components:
${component}`;

// The counter never changes; the side Deployment is what changes while the device is away, so the
// workload producing the lines is never restarted by an update and its one run must cover all.
const counterManifest = deployment(COUNTER, '1', `      - name: counter
        command: ${JSON.stringify([BUSYBOX, 'sh', '-c', COUNTER_SCRIPT])}
`);
const sideManifest = (version: string) =>
  deployment(SIDE, version, `      - name: side
        command: ${JSON.stringify([BUSYBOX, 'sleep', '100000'])}
        env: { SIDE_VERSION: "${version}" }
`);

type LogRecord = { seq: number; at: string; component: string; line: string };

/**
 * The history check: the server's counter log must be the driver's one start marker, then
 * `line 1`, `line 2`, … with no gap, no duplicate and no second start; seqs strictly increasing.
 */
function checkHistory(logs: readonly LogRecord[]): { lines: number; problems: string[] } {
  const problems: string[] = [];
  let expected = 1;
  let lastSeq = -Infinity;
  logs.forEach((record, index) => {
    if (problems.length >= 10) return;
    if (!(record.seq > lastSeq)) problems.push(`seq ${record.seq} after seq ${lastSeq} (index ${index})`);
    lastSeq = record.seq;
    if (record.component !== 'counter') problems.push(`seq ${record.seq}: component ${JSON.stringify(record.component)}`);
    if (record.line.startsWith(START_MARKER)) {
      if (index !== 0) problems.push(`seq ${record.seq}: the workload was started again: ${record.line}`);
      return;
    }
    const match = /^line (\d+)$/.exec(record.line);
    if (!match) {
      problems.push(`seq ${record.seq}: unexpected line ${JSON.stringify(record.line)}`);
      return;
    }
    const k = Number(match[1]);
    if (k < expected) problems.push(`seq ${record.seq}: line ${k} again (duplicate; expected line ${expected})`);
    else if (k > expected) problems.push(`seq ${record.seq}: line ${k} where line ${expected} was due (lines ${expected}..${k - 1} missing)`);
    expected = k + 1;
  });
  return { lines: expected - 1, problems };
}

/** The counter's run: its session leader (the shell), found in /proc by the agent's marker. */
function counterLeaders(): { pid: number; startTime: number }[] {
  const pids = findProcesses(({ pid, env }) => {
    if (!env.includes(`DRIFTLESS_AGENT=${device}`)) return false;
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(COUNTER_SCRIPT);
    } catch {
      return false;
    }
  });
  const leaders: { pid: number; startTime: number }[] = [];
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // A forked child of the shell (about to exec `sleep`) shares its command line, not its group.
      if (Number(fields[5 - 3]) === pid) leaders.push({ pid, startTime: Number(fields[22 - 3]) });
    } catch {
      // gone meanwhile
    }
  }
  return leaders;
}

/** SIDE_VERSION of each side process running on the device, seen in /proc, not as the agent says. */
function sideVersionsRunning(): string[] {
  const versions: string[] = [];
  findProcesses(({ env }) => {
    const version = env.find((e) => e.startsWith('SIDE_VERSION='));
    if (env.includes(`DRIFTLESS_AGENT=${device}`) && version) versions.push(version.slice('SIDE_VERSION='.length));
    return false;
  });
  return versions.sort();
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

describe('partitions: an agent on its own host, its link cut and degraded', { timeout: (CUT_SECONDS + DEGRADE_SECONDS + 420) * 1000 }, () => {
  let fleet: Fleet;
  let lan: Lan;
  let host: LanHost;
  let proxy: TcpProxy;
  let agent: AgentHandle;
  let degradation: LinkDegradation | null = null;
  let dataDir: string;
  let counter: { pid: number; startTime: number };
  /** Every observation of the counter's leader, sampled each second for the whole test. */
  const samples: { at: number; leaders: { pid: number; startTime: number }[] }[] = [];
  let sampler: NodeJS.Timeout | null = null;
  /** The server's counter log as read so far (it only ever grows at its end). */
  const seen: LogRecord[] = [];
  const kills: string[] = [];
  /** Every telemetry request with counter lines that passed the proxy: what the agent really sent. */
  const requests: { at: number; seqs: number[] }[] = [];
  /** Batches stored by the server whose acknowledgement the agent was killed before receiving. */
  const resent: { when: string; seqs: number[]; from: number }[] = [];
  /** Telemetry requests whose body the test could not read (it must read them all to compare). */
  const unreadable: string[] = [];

  const startAgent = () => {
    agent = fleet.startAgent({ name: device, site, labels: { tier: `part-${tag}` }, dataDir, wrap: host.wrap, serverUrl: proxy.url });
    return agent;
  };

  /** SIGKILL, then the same agent again on the same data: the workload must not notice. */
  async function crashAgent(when: string): Promise<void> {
    const exit = await agent.child.kill();
    assert.equal(exit.signal, 'SIGKILL', `the agent was killed (${when})`);
    assert.ok(isAlive(counter.pid), `the counter survived the agent's death (${when})`);
    kills.push(when);
    startAgent();
  }

  async function fetchLogs(after: number): Promise<LogRecord[]> {
    const out: LogRecord[] = [];
    for (;;) {
      const answer = await fleet.api(`/v1/devices/${device}/logs?component=counter&after=${after}&limit=1000`);
      if (answer.status !== 200) throw new Error(`GET /v1/devices/${device}/logs answered ${answer.status}: ${answer.text}`);
      const page = answer.body as { logs: LogRecord[]; next: number };
      if (page.logs.length === 0) return out;
      out.push(...page.logs);
      after = page.next;
    }
  }

  /** Reads what the server has gained since the last read; returns the highest counter line. */
  async function refresh(): Promise<number> {
    const more = await fetchLogs(seen.at(-1)?.seq ?? 0);
    seen.push(...more);
    return lastLine(seen.map((r) => r.line));
  }

  const lastLine = (lines: readonly string[]) => {
    for (let i = lines.length - 1; i >= 0; i--) {
      const m = /^line (\d+)$/.exec(lines[i]!);
      if (m) return Number(m[1]);
    }
    return 0;
  };

  /** The counter's highest line on the device itself: its output file, which the agent reads. */
  function deviceLine(): number {
    const root = join(dataDir, 'processes');
    for (const key of readdirSync(root)) {
      let instance: { component?: string };
      try {
        instance = JSON.parse(readFileSync(join(root, key, 'instance.json'), 'utf8')) as { component?: string };
      } catch {
        continue;
      }
      if (instance.component !== 'counter') continue;
      const text = readFileSync(join(root, key, 'output.log'), 'utf8');
      return lastLine(text.trimEnd().split('\n'));
    }
    throw new Error(`no counter instance under ${root}`);
  }

  /** Waits until the server holds the counter's lines up to `line`; returns how long it took. */
  async function serverReaches(line: number, what: string, timeoutMs: number): Promise<number> {
    const started = Date.now();
    await waitFor(`the server to hold the counter's lines up to ${line} (${what})`, refresh, (n) => n >= line, {
      timeoutMs,
      intervalMs: 500,
      context: () => `server has ${seen.length} records, last ${JSON.stringify(seen.at(-1))}\n${fleet.diagnostics()}`,
    });
    return Date.now() - started;
  }

  const sideAt = (version: string) => (ds: DeviceView[]) => {
    const c = componentOf(ds.find((d) => d.name === device), 'side');
    return c?.state === 'healthy' && c.version === version && c.desiredVersion === version;
  };

  /** Counter lines in a telemetry request: their seqs. */
  function counterSeqs(request: TappedRequest): number[] {
    if (request.method !== 'POST' || request.path.split('?')[0] !== '/v1/device/telemetry') return [];
    try {
      const batch = requestJson(request) as { records: { seq: number; kind: string; component?: string }[] };
      return batch.records.filter((r) => r.kind === 'log' && r.component === 'counter').map((r) => r.seq);
    } catch (error) {
      // Thrown here it would land in the proxy's socket handler; the history check reports it instead.
      unreadable.push(`${request.method} ${request.path}: ${(error as Error).message}`);
      return [];
    }
  }

  /**
   * Kills the agent in the middle of an upload: the moment a telemetry request with counter lines
   * has passed the proxy, the server's answers are held back; once the server has stored that
   * batch (its acknowledgement is not yet at the agent), the agent is killed. The restarted agent
   * must send the batch again (at least once), and the server must store it once.
   */
  async function crashDuringUpload(when: string, timeoutMs: number, trigger?: () => Promise<void>): Promise<void> {
    const hold: { seqs: number[] | null } = { seqs: null };
    const untap = tapHttpRequests(proxy, (request) => {
      if (hold.seqs !== null) return;
      const seqs = counterSeqs(request);
      if (seqs.length === 0) return;
      hold.seqs = seqs;
      proxy.pause('down');
    });
    let resendFrom = 0;
    try {
      await trigger?.();
      const batch = await waitUntil(`a telemetry upload to pass the proxy (${when})`, () => hold.seqs, { timeoutMs, context: () => fleet.diagnostics() });
      const last = Math.max(...batch);
      await waitFor(`the held upload to be stored by the server (${when})`, () => fetchLogs(last - 1), (logs) => logs[0]?.seq === last, {
        timeoutMs: 60_000,
        context: () => fleet.diagnostics(),
      });
      resendFrom = requests.length;
      await crashAgent(when);
      resent.push({ when, seqs: batch, from: resendFrom });
    } finally {
      untap();
      proxy.resume();
    }
  }

  /** Waits until each batch held back by crashDuringUpload has been sent again by the restarted agent. */
  async function assertResent(): Promise<void> {
    for (const r of resent) {
      await waitUntil(`the restarted agent to send the unacknowledged batch again (${r.when})`, () => requests.slice(r.from).some((q) => q.seqs.includes(r.seqs[0]!)), {
        timeoutMs: 60_000,
        context: () => `held seqs ${r.seqs[0]}..${r.seqs.at(-1)}; sent since: ${JSON.stringify(requests.slice(r.from).map((q) => [q.seqs[0], q.seqs.at(-1)]))}`,
      });
    }
  }

  before(async () => {
    assertBusybox();
    lan = await createLan();
    fleet = createFleet('partition');
    fleet.own(device);
    dataDir = join(fleet.dir, 'agent-data');
    const server = await fleet.startServer({ listen: `${lan.gateway}:0` });
    proxy = await startTcpProxy({ target: { host: lan.gateway, port: server.port }, listen: { host: lan.gateway } });
    host = await lan.addHost();
    tapHttpRequests(proxy, (request) => {
      const seqs = counterSeqs(request);
      if (seqs.length > 0) requests.push({ at: Date.now(), seqs });
    });
    startAgent();
    await fleet.waitForDevices('the agent to enrol over its link', (ds) => ds.some((d) => d.name === device && d.online));
    await fleet.apply('counter.yaml', counterManifest);
    await fleet.apply('side-1.yaml', sideManifest('1'));
    await fleet.waitForDevices('the counter and side healthy', (ds) => sideAt('1')(ds) && componentOf(ds.find((d) => d.name === device), 'counter')?.state === 'healthy');
    const leaders = await waitFor('one counter process', counterLeaders, (l) => l.length === 1);
    counter = leaders[0]!;
    sampler = setInterval(() => samples.push({ at: Date.now(), leaders: counterLeaders() }), 1000);
    await serverReaches(20, 'lines flow before any fault', 60_000);
  });

  after(async () => {
    if (sampler) clearInterval(sampler);
    await degradation?.restore().catch(() => {});
    await host?.setLink(true).catch(() => {});
    await proxy?.close();
    await fleet?.cleanup();
    await lan?.cleanup();
  });

  /** The whole history so far, read again from the start: exactly once, in order, one run. */
  async function assertHistory(what: string): Promise<number> {
    const all = await fetchLogs(0);
    assert.deepEqual(all.slice(0, seen.length), seen, 'what the server returned earlier is still its history (append-only)');
    const { lines, problems } = checkHistory(all);
    assert.deepEqual(problems, [], `${what}: the counter's lines on the server`);
    const markers = all.filter((r) => r.line.startsWith(START_MARKER)).length;
    assert.ok(markers <= 1, `one run of the counter, saw ${markers} starts`);
    const leaders = counterLeaders();
    assert.deepEqual(leaders, [counter], `${what}: the same counter process runs (pid ${counter.pid})`);
    // What was sent against what was stored: nothing sent is missing, nothing stored was not sent.
    await assertResent();
    assert.deepEqual(unreadable, [], 'every telemetry request through the proxy was readable');
    const sentSeqs = new Set(requests.flatMap((r) => r.seqs));
    const storedSeqs = new Set(all.map((r) => r.seq));
    const lastStored = all.at(-1)!.seq;
    const lostSeqs = [...sentSeqs].filter((q) => q <= lastStored && !storedSeqs.has(q));
    assert.deepEqual(lostSeqs.slice(0, 10), [], `${what}: every counter record sent (up to the last one stored) is stored`);
    assert.deepEqual([...storedSeqs].filter((q) => !sentSeqs.has(q)).slice(0, 10), [], `${what}: every stored counter record was sent through the link`);
    const broken = samples.filter((s) => s.leaders.length !== 1 || s.leaders[0]!.pid !== counter.pid || s.leaders[0]!.startTime !== counter.startTime);
    assert.deepEqual(broken, [], `${what}: every sample saw the one counter process, pid ${counter.pid}`);
    return lines;
  }

  /** How often the agent sent counter records, and how many of them more than once. */
  function sendFigures(): string {
    const sent = requests.reduce((n, r) => n + r.seqs.length, 0);
    const distinct = new Set(requests.flatMap((r) => r.seqs)).size;
    return `${requests.length} uploads with counter lines, ${sent} records sent for ${distinct} distinct (${sent - distinct} resent)`;
  }

  it(`link cut for ${CUT_SECONDS} s, the agent killed during the cut and during the upload after it`, async () => {
    await refresh();
    const cutFrom = Date.now();
    await host.setLink(false);
    const cutAt = Date.now();

    // The server notices from the device's silence, and says since when: its last contact.
    const offline = await waitFor('the server to show the device offline', () => fleet.deviceDetail(device), (d) => !d.online, {
      timeoutMs: 60_000,
      context: () => fleet.diagnostics(),
    });
    const noticedAfter = Date.now() - cutAt;
    assert.ok(offline.lastSeen, 'an offline device says since when');
    const lastSeen = Date.parse(offline.lastSeen);
    assert.ok(lastSeen <= cutAt && lastSeen >= cutFrom - 5_000, `lastSeen ${offline.lastSeen} is the last contact before the cut (${new Date(cutFrom).toISOString()}..${new Date(cutAt).toISOString()})`);
    const listed = (await fleet.cliJson<DeviceView[]>(['get', 'devices', '-o', 'json'])).find((d) => d.name === device);
    assert.equal(listed?.online, false, '`get devices -o json` shows it offline');
    assert.equal(listed?.lastSeen, offline.lastSeen, '`get devices -o json` shows the same lastSeen');

    // A crash while the device is alone: the restarted agent adopts the running counter.
    await sleep(Math.max(0, cutAt + (CUT_SECONDS * 1000) / 3 - Date.now()));
    await crashAgent('during the cut');
    // A change while the device is away.
    await fleet.apply('side-2.yaml', sideManifest('2'));
    const during = await fleet.devices();
    assert.notEqual(componentOf(during.find((d) => d.name === device), 'side')?.version, '2', 'the change cannot reach the device during the cut');

    await sleep(Math.max(0, cutAt + CUT_SECONDS * 1000 - Date.now()));
    const still = await fleet.deviceDetail(device);
    assert.equal(still.online, false, 'offline for the whole cut');
    assert.equal(still.lastSeen, offline.lastSeen, 'lastSeen did not move while the device was away');
    assert.ok(isAlive(counter.pid), 'the counter ran through the cut');
    assert.deepEqual(sideVersionsRunning(), ['1'], 'the device still runs side version 1: the change did not reach it');

    // Restore, and kill the agent in the middle of its first upload of the backlog.
    const backlogTo = deviceLine();
    const serverHadBefore = await refresh();
    let restoredAt = 0;
    // Armed before the link returns, so the very first upload of the backlog is the one interrupted.
    await crashDuringUpload('during the upload after the cut', 360_000, async () => {
      await host.setLink(true);
      restoredAt = Date.now();
    });
    const cutMs = restoredAt - cutAt;
    const interruptedAfter = Date.now() - restoredAt;

    const catchUpMs = await serverReaches(backlogTo, 'the backlog of the cut', 300_000);
    const caughtUpAfter = Date.now() - restoredAt;
    await fleet.waitForDevices('the change made during the cut applied after it', sideAt('2'), { timeoutMs: 180_000 });
    await waitFor('the device to run side version 2 only', sideVersionsRunning, (v) => v.join() === '2', { context: () => fleet.diagnostics() });
    const appliedAfter = Date.now() - restoredAt;
    const online = await fleet.deviceDetail(device);
    assert.equal(online.online, true, 'online again');

    await serverReaches(deviceLine(), 'lines keep flowing after the cut', 60_000);
    const lines = await assertHistory('after the cut');
    console.log(
      `partition (cut): ${lines} lines exactly once and in order; cut ${seconds(cutMs)}, server showed offline after ${seconds(noticedAfter)} ` +
        `(lastSeen ${offline.lastSeen}); backlog ${backlogTo - serverHadBefore} lines; first upload interrupted ${seconds(interruptedAfter)} after restore, ` +
        `caught up ${seconds(caughtUpAfter)} after restore (${seconds(catchUpMs)} after the interrupted upload); change applied ${seconds(appliedAfter)} after restore; ` +
        `agent killed ${kills.length}× (${kills.join(', ')}); ${sendFigures()}; counter pid ${counter.pid} throughout (${samples.length} samples)`,
    );
  });

  it(`link degraded for ${DEGRADE_SECONDS} s: ${LOSS_PERCENT}% loss, ${RATE_KBIT} kbit/s, +${LATENCY_MS} ms each way`, async () => {
    const killsBefore = kills.length;
    const startLine = await refresh();
    const bytesBefore = proxy.stats().bytes;
    degradation = await degradeLink(host, { lossPercent: LOSS_PERCENT, rateKbit: RATE_KBIT });
    proxy.setLatency(LATENCY_MS);
    const degradedAt = Date.now();
    const shaping = await linkShaping(host);
    assert.equal(shaping.nftTables.length, 1, `the loss rules are in place: ${JSON.stringify(shaping)}`);
    assert.equal(shaping.qdiscs.length, 2, `the bandwidth cap is on both ends: ${JSON.stringify(shaping)}`);

    await fleet.apply('side-3.yaml', sideManifest('3'));
    await sleep(Math.max(0, degradedAt + (DEGRADE_SECONDS * 1000) / 3 - Date.now()));
    await crashAgent('while degraded');
    await crashDuringUpload('during an upload while degraded', DEGRADE_SECONDS * 1000 + 120_000);
    await sleep(Math.max(0, degradedAt + DEGRADE_SECONDS * 1000 - Date.now()));

    const appliedWhileDegraded = sideAt('3')(await fleet.devices());
    const duringLine = await refresh();
    const dropped = (await linkShaping(host)).droppedPackets;
    await degradation.restore();
    degradation = null;
    proxy.setLatency(0);
    const restoredAt = Date.now();
    assert.deepEqual(await linkShaping(host), { nftTables: [], qdiscs: [], droppedPackets: 0 }, 'the link is clean again');

    const backlogTo = deviceLine();
    await serverReaches(backlogTo, 'the backlog of the degraded minute', 300_000);
    const caughtUpAfter = Date.now() - restoredAt;
    await fleet.waitForDevices('the change made while degraded applied', sideAt('3'), { timeoutMs: 180_000 });
    await waitFor('the device to run side version 3 only', sideVersionsRunning, (v) => v.join() === '3', { context: () => fleet.diagnostics() });
    await serverReaches(deviceLine(), 'lines keep flowing after the degradation', 60_000);
    const lines = await assertHistory('after the degradation');
    const bytes = proxy.stats().bytes;
    console.log(
      `partition (degraded): ${lines} lines exactly once and in order; degraded ${seconds(restoredAt - degradedAt)} ` +
        `(${LOSS_PERCENT}% loss, ${RATE_KBIT} kbit/s, +${LATENCY_MS} ms each way; ${dropped} packets dropped); ` +
        `${duringLine - startLine} lines arrived while degraded; through the proxy ${bytes.up - bytesBefore.up} B up, ${bytes.down - bytesBefore.down} B down; ` +
        `caught up ${seconds(caughtUpAfter)} after restore; change applied ${appliedWhileDegraded ? 'while degraded' : 'after restore'}; ` +
        `agent killed ${kills.length - killsBefore}× (${kills.slice(killsBefore).join(', ')}); ${sendFigures()}; counter pid ${counter.pid} throughout`,
    );
  });
});
