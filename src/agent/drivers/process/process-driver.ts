import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { DesiredComponent } from '../../../protocol/messages.ts';
import { DriverError, type Instance, type InstanceSpec, type RuntimeDriver } from '../driver.ts';
import { emptyIfRead, readOutput } from './output.ts';

/**
 * Runs components without `image:` as supervised native processes.
 *
 * Workloads must outlive the agent (an agent upgrade or crash must not take the point of sale down),
 * so every process runs in its own session, writes to a log file and is never tied to the agent's
 * lifetime. What the agent knows about them lives in a durable inventory, one `instance.json` per
 * instance, which a restarted agent reads to adopt them again. A pid alone is not proof of
 * ownership (pids are recycled), so a process counts as ours only when its pid, its kernel start
 * time and the boot it started in all match what we recorded.
 */

export type RestartBackoff = {
  /** First delay after a crash. */
  initialMs: number;
  /** The doubling stops here. */
  maxMs: number;
  /** A run at least this long counts as healthy: the next crash starts again from `initialMs`. */
  resetAfterMs: number;
};

export const defaultRestartBackoff: RestartBackoff = { initialMs: 1_000, maxMs: 30_000, resetAfterMs: 60_000 };

export type ProcessDriverOptions = {
  agentId: string;
  dataDir: string;
  log?: (msg: string) => void;
  now?: () => number;
  backoff?: Partial<RestartBackoff>;
  /** A first start that exits within this time is a start failure, not a crash to restart. */
  startGraceMs?: number;
  /** How long `remove` waits after SIGTERM before it sends SIGKILL. */
  stopTimeoutMs?: number;
  /** How often processes adopted from an earlier agent (not our children) are checked for exits. */
  pollIntervalMs?: number;
  /** How large a process's output file grows before it is rotated at a restart, or emptied once read (default 8 MiB). */
  maxOutputBytes?: number;
};

/** One instance in the inventory, as stored in `dataDir/processes/<key>/instance.json`. */
export type ProcessRecord = {
  format: 1;
  key: string;
  specHash: string;
  agentId: string;
  deployment: string;
  component: string;
  version: string;
  spec: DesiredComponent;
  /** Whether the supervisor keeps it running; `stopped` after a failed first start or while removing. */
  desired: 'running' | 'stopped';
  /** Marker put into the environment of the current run, to find its processes when the pid is not known or the leader is gone. */
  token: string | null;
  pid: number | null;
  /** `/proc/<pid>/stat` field 22 (clock ticks since boot) of the current run. */
  startTime: number | null;
  /** `/proc/sys/kernel/random/boot_id` when the run started: after a reboot the same pid and start time can recur. */
  bootId: string | null;
  startedAt: string | null;
  exitCode: number | null;
  restarts: number;
  lastError: string | null;
};

/** Decides the delay before the next restart after a crash; pure so the policy is testable without waiting. */
export function backoffAfterCrash(
  state: { streak: number; ranMs: number },
  policy: RestartBackoff = defaultRestartBackoff,
): { delayMs: number; streak: number } {
  const streak = state.ranMs >= policy.resetAfterMs ? 0 : state.streak;
  const delayMs = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(streak, 30));
  return { delayMs, streak: streak + 1 };
}

/** Declared ports as `{ container: host }`; a native process listens where it listens, so both sides are as written. */
export function declaredPorts(ports: readonly string[] | undefined): Record<number, number> {
  const out: Record<number, number> = {};
  for (const entry of ports ?? []) {
    const parts = (entry.split('/')[0] ?? '').split(':');
    const host = Number(parts[0]);
    const container = Number(parts[parts.length - 1]);
    if (Number.isInteger(host) && Number.isInteger(container)) out[container] = host;
  }
  return out;
}

type ProcStat = { state: string; pgrp: number; startTime: number; exitCode: number | null };

/** Reads the fields we need from `/proc/<pid>/stat`; the command name may hold spaces and parentheses, so fields are counted after the last ')'. */
export function readProcStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // After the last ')' the fields start at field 3 (state); field N is at index N - 3.
  const fields = text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
  const state = fields[0] ?? '?';
  const pgrp = Number(fields[5 - 3]);
  const startTime = Number(fields[22 - 3]);
  // Field 52 is the wait status, meaningful once the process is a zombie.
  const status = fields[52 - 3] === undefined ? null : Number(fields[52 - 3]);
  return { state, pgrp, startTime, exitCode: status === null || Number.isNaN(status) ? null : waitStatusToExitCode(status) };
}

function waitStatusToExitCode(status: number): number {
  const signal = status & 0x7f;
  return signal === 0 ? (status >> 8) & 0xff : 128 + signal;
}

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number | null {
  if (code !== null) return code;
  if (signal !== null) return 128 + (osConstants.signals[signal] ?? 0);
  return null;
}

function readBootId(): string | null {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return null;
  }
}

function procPids(): number[] {
  try {
    return fs
      .readdirSync('/proc')
      .filter((name) => /^[0-9]+$/.test(name))
      .map(Number);
  } catch {
    return [];
  }
}

function environHas(pid: number, entry: string): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(entry);
  } catch {
    return false;
  }
}

function isDead(state: string): boolean {
  return state === 'Z' || state === 'X' || state === 'x';
}

const keyPattern = /^[a-z0-9][a-z0-9._-]{0,200}$/;
const instanceFile = 'instance.json';
const outputFile = 'output.log';
const rotatedOutputFile = 'output.log.1';
const startMarker = '--- driftless: starting ';

/** Environment variables every run carries: they mark processes as ours where a pid cannot. */
const agentVar = 'DRIFTLESS_AGENT';
const instanceVar = 'DRIFTLESS_INSTANCE';
const runVar = 'DRIFTLESS_RUN';

type Entry = {
  record: ProcessRecord;
  /** Present when this driver spawned the current run, so its exit arrives as an event. */
  child: ChildProcess | null;
  restartTimer: NodeJS.Timeout | null;
  crashStreak: number;
  /** An intentional stop is under way: an exit now is not a crash. */
  stopping: boolean;
  /** A run is being started: until its pid is recorded, not finding it alive means nothing. */
  starting: boolean;
  /** A first start is being judged: an exit now is a start failure, not a crash. */
  judging: boolean;
};

type Leader = 'alive' | 'zombie' | 'gone' | 'foreign';

export function createProcessDriver(opts: ProcessDriverOptions): RuntimeDriver {
  const log = opts.log ?? (() => {});
  const now = opts.now ?? Date.now;
  const backoff: RestartBackoff = { ...defaultRestartBackoff, ...opts.backoff };
  const startGraceMs = opts.startGraceMs ?? 200;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 5_000;
  const pollIntervalMs = opts.pollIntervalMs ?? 1_000;
  const maxOutputBytes = opts.maxOutputBytes ?? 8 * 1024 * 1024;
  const root = path.join(opts.dataDir, 'processes');
  const bootId = readBootId();

  const entries = new Map<string, Entry>();
  const locks = new Map<string, Promise<unknown>>();
  let closed = false;
  let pollTimer: NodeJS.Timeout | null = null;
  let loaded: Promise<void> | null = null;

  const dirOf = (key: string) => path.join(root, key);

  function checkKey(key: string): void {
    if (!keyPattern.test(key) || key.includes('..')) throw new Error(`invalid instance key "${key}"`);
  }

  /** Operations on one key run one at a time, so a restart cannot race a remove or a create. */
  function withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = locks.get(key) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const tail = next.catch(() => {});
    locks.set(key, tail);
    void tail.then(() => {
      if (locks.get(key) === tail) locks.delete(key);
    });
    return next;
  }

  async function writeDurably(file: string, text: string): Promise<void> {
    const tmp = `${file}.tmp-${randomUUID()}`;
    const handle = await fsp.open(tmp, 'w');
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(tmp, file);
    await syncDir(path.dirname(file));
  }

  async function syncDir(dir: string): Promise<void> {
    const handle = await fsp.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** Persists only entries still in the inventory, so a late write cannot bring back a removed instance. */
  async function persist(entry: Entry): Promise<void> {
    if (entries.get(entry.record.key) !== entry) return;
    const dir = dirOf(entry.record.key);
    await ensureDir(dir);
    await writeDurably(path.join(dir, instanceFile), `${JSON.stringify(entry.record, null, 2)}\n`);
  }

  /** A new directory is durable only once its parent's entry for it is synced too. */
  async function ensureDir(dir: string): Promise<void> {
    const first = await fsp.mkdir(dir, { recursive: true });
    if (first === undefined) return;
    for (let d = dir; d.length >= first.length; d = path.dirname(d)) await syncDir(path.dirname(d));
  }

  async function deleteInventory(key: string): Promise<void> {
    const dir = dirOf(key);
    // Only the files this driver writes; a directory holding anything else (say a workingDir
    // someone pointed here) stays.
    await fsp.rm(path.join(dir, instanceFile), { force: true });
    await syncDir(dir).catch(() => {});
    for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
      if (name === outputFile || name === rotatedOutputFile || name.startsWith(`${instanceFile}.tmp-`)) {
        await fsp.rm(path.join(dir, name), { force: true });
      }
    }
    await fsp.rmdir(dir).catch(() => {});
  }

  function leaderOf(record: ProcessRecord): { leader: Leader; exitCode: number | null } {
    if (record.pid === null) return { leader: 'gone', exitCode: null };
    const stat = readProcStat(record.pid);
    if (stat === null) return { leader: 'gone', exitCode: null };
    if (record.bootId !== bootId || record.startTime === null || stat.startTime !== record.startTime) {
      return { leader: 'foreign', exitCode: null };
    }
    if (isDead(stat.state)) return { leader: 'zombie', exitCode: stat.exitCode };
    return { leader: 'alive', exitCode: null };
  }

  /**
   * Live processes of a run whose leader is gone (or never recorded), recognised by the run's
   * marker: the leader's death leaves its children in the group, and they must not keep the port
   * the next run needs.
   */
  function markedRemnants(record: ProcessRecord): number[] {
    if (record.token === null) return [];
    const marker = `${runVar}=${record.token}`;
    const found: number[] = [];
    for (const pid of procPids()) {
      if (pid === process.pid) continue;
      const stat = readProcStat(pid);
      if (stat === null || isDead(stat.state)) continue;
      if (record.pid !== null && stat.pgrp !== record.pid) continue;
      if (environHas(pid, marker)) found.push(pid);
    }
    return found;
  }

  /** Signals what is verifiably ours and nothing else; returns whether anything of the run still lives. */
  function signalRun(record: ProcessRecord, signal: NodeJS.Signals | 0): boolean {
    const { leader } = leaderOf(record);
    if (leader === 'alive' && record.pid !== null) {
      // The leader is ours and alive, so its pid cannot have been reused as a group id by anyone else.
      if (signal !== 0) tryKill(-record.pid, signal);
      return true;
    }
    // A foreign process now holds the pid: our group died out entirely (a group id stays reserved
    // while any member lives), so there is nothing of ours left to signal.
    if (leader === 'foreign') return false;
    const remnants = markedRemnants(record);
    if (signal !== 0) for (const pid of remnants) tryKill(pid, signal);
    return remnants.length > 0;
  }

  function tryKill(pid: number, signal: NodeJS.Signals): void {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }

  async function stopRun(entry: Entry): Promise<void> {
    const record = entry.record;
    if (!signalRun(record, 'SIGTERM')) return;
    const step = 50;
    for (let waited = 0; waited < stopTimeoutMs; waited += step) {
      await delay(step);
      if (!signalRun(record, 0)) return;
    }
    log(`process ${record.key} did not stop within ${stopTimeoutMs}ms of SIGTERM; sending SIGKILL`);
    signalRun(record, 'SIGKILL');
    for (let waited = 0; waited < 2_000; waited += step) {
      await delay(step);
      if (!signalRun(record, 0)) return;
    }
    log(`process ${record.key} still has live processes after SIGKILL`);
  }

  function environment(record: ProcessRecord, token: string | null): Record<string, string> {
    const env: Record<string, string> = {};
    for (const name of ['PATH', 'HOME', 'LANG'] as const) {
      const value = process.env[name];
      if (value !== undefined) env[name] = value;
    }
    Object.assign(env, record.spec.env ?? {});
    // Set last so a component cannot overwrite the markers that prove ownership.
    env[agentVar] = record.agentId;
    env[instanceVar] = record.key;
    if (token !== null) env[runVar] = token;
    return env;
  }

  async function rotateOutput(dir: string): Promise<void> {
    const file = path.join(dir, outputFile);
    const size = await fsp.stat(file).then((s) => s.size, () => 0);
    if (size > maxOutputBytes) await fsp.rename(file, path.join(dir, rotatedOutputFile));
  }

  /** The last lines the current run wrote, for a start failure message. */
  function outputTail(key: string, lines = 10): string {
    let text = '';
    try {
      const file = path.join(dirOf(key), outputFile);
      const fd = fs.openSync(file, 'r');
      try {
        const size = fs.fstatSync(fd).size;
        const length = Math.min(size, 8192);
        const buffer = Buffer.alloc(length);
        fs.readSync(fd, buffer, 0, length, size - length);
        text = buffer.toString('utf8');
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      return '';
    }
    const marker = text.lastIndexOf(startMarker);
    if (marker >= 0) text = text.slice(text.indexOf('\n', marker) + 1);
    return text.split('\n').map((line) => line.trimEnd()).filter(Boolean).slice(-lines).join('\n');
  }

  function describeSpawnError(error: NodeJS.ErrnoException, program: string): string {
    if (error.code === 'ENOENT') return `${program}: no such file or directory`;
    if (error.code === 'EACCES') return `${program}: permission denied`;
    return `${program}: ${error.message}`;
  }

  /**
   * Starts a run. The record is written with a fresh marker before the spawn, so an agent killed
   * between spawn and the second write still finds the process by its marker.
   */
  async function launch(entry: Entry, first: boolean): Promise<void> {
    const record = entry.record;
    const argv = record.spec.command ?? [];
    const program = argv[0];
    if (program === undefined) throw new DriverError('start-failed', `component ${record.component} has no command`);
    const dir = dirOf(record.key);
    await ensureDir(dir);
    await rotateOutput(dir);
    const token = randomUUID();
    Object.assign(record, {
      desired: 'running',
      token,
      pid: null,
      startTime: null,
      bootId,
      startedAt: null,
      exitCode: null,
      lastError: null,
    } satisfies Partial<ProcessRecord>);
    entry.starting = true;
    entry.judging = first;
    try {
      await persist(entry);
      const cwd = record.spec.workingDir;
      if (cwd !== undefined && !(await fsp.stat(cwd).then((s) => s.isDirectory(), () => false))) {
        return await launchFailed(entry, first, `working directory ${cwd} does not exist`);
      }
      const out = fs.openSync(path.join(dir, outputFile), 'a');
      let child: ChildProcess;
      try {
        fs.writeSync(out, `${startMarker}${JSON.stringify(argv)} at ${new Date(now()).toISOString()}\n`);
        child = spawn(program, argv.slice(1), {
          cwd,
          env: environment(record, token),
          // Own session and process group: survives the agent, and one signal reaches its children.
          detached: true,
          stdio: ['ignore', out, out],
        });
      } finally {
        fs.closeSync(out);
      }
      const pid = child.pid;
      if (pid === undefined) {
        const [error] = (await onceEvent(child, 'error')) as [NodeJS.ErrnoException];
        return await launchFailed(entry, first, `cannot start ${describeSpawnError(error, program)}`);
      }
      // Read before yielding to the event loop: until then the child cannot have been reaped.
      const stat = readProcStat(pid);
      record.pid = pid;
      record.startTime = stat?.startTime ?? null;
      record.startedAt = new Date(now()).toISOString();
      entry.child = child;
      child.on('error', () => {});
      child.unref();
      const exited = new Promise<number | null>((resolve) =>
        child.once('exit', (code, signal) => resolve(exitCodeOf(code, signal))),
      );
      void exited.then((code) => onChildExit(entry, token, code));
      await persist(entry);
      if (!first) return;
      const early = await Promise.race([exited, delay(startGraceMs, 'running' as const)]);
      if (early !== 'running') {
        const tail = outputTail(record.key);
        return await launchFailed(
          entry,
          first,
          `${argv.join(' ')} exited with code ${early ?? 'unknown'} right after it started${tail ? `; last output:\n${tail}` : ''}`,
          early,
        );
      }
    } finally {
      entry.starting = false;
      entry.judging = false;
    }
  }

  async function launchFailed(entry: Entry, first: boolean, message: string, exitCode: number | null = null): Promise<void> {
    const record = entry.record;
    record.lastError = message;
    record.exitCode = exitCode;
    log(`process ${record.key}: ${message}`);
    if (!first) {
      await persist(entry);
      crashed(entry, exitCode);
      return;
    }
    // A command that cannot run will not run better in a loop: leave it stopped and say why.
    record.desired = 'stopped';
    await persist(entry);
    await stopRun(entry);
    throw new DriverError('start-failed', message);
  }

  function onChildExit(entry: Entry, token: string, code: number | null): void {
    if (closed || entries.get(entry.record.key) !== entry || entry.record.token !== token) return;
    entry.child = null;
    entry.record.exitCode = code;
    if (entry.judging || entry.stopping) return;
    crashed(entry, code);
  }

  /** Schedules a restart with back-off; the durable record shows the exit code meanwhile. */
  function crashed(entry: Entry, exitCode: number | null): void {
    const record = entry.record;
    if (closed || entry.stopping || entry.restartTimer !== null || record.desired !== 'running') return;
    record.exitCode = exitCode;
    const startedAt = record.startedAt === null ? Number.NaN : Date.parse(record.startedAt);
    const ranMs = Number.isNaN(startedAt) ? 0 : now() - startedAt;
    const next = backoffAfterCrash({ streak: entry.crashStreak, ranMs }, backoff);
    entry.crashStreak = next.streak;
    log(`process ${record.key} exited with code ${exitCode ?? 'unknown'}; restarting in ${next.delayMs}ms`);
    void withLock(record.key, () => persist(entry)).catch((error: unknown) => log(`process ${record.key}: ${String(error)}`));
    // The timer stays set until the restart runs, so a poll meanwhile does not schedule a second one.
    entry.restartTimer = setTimeout(() => {
      void withLock(record.key, () => restart(entry)).catch((error: unknown) =>
        log(`process ${record.key}: restart failed: ${String(error)}`),
      );
    }, next.delayMs);
    entry.restartTimer.unref();
  }

  async function restart(entry: Entry): Promise<void> {
    entry.restartTimer = null;
    if (closed || entries.get(entry.record.key) !== entry || entry.record.desired !== 'running') return;
    if (leaderOf(entry.record).leader === 'alive') return;
    entry.stopping = true;
    try {
      await stopRun(entry);
    } finally {
      entry.stopping = false;
    }
    entry.record.restarts += 1;
    await launch(entry, false);
  }

  /** Exits of processes that are not our children (adopted from an earlier agent) are only seen by looking. */
  function checkAdopted(entry: Entry): boolean {
    const { leader, exitCode } = leaderOf(entry.record);
    const running = leader === 'alive';
    if (!running && entry.child === null && !entry.starting && !entry.stopping) crashed(entry, exitCode ?? entry.record.exitCode);
    return running;
  }

  async function load(): Promise<void> {
    if (!fs.existsSync('/proc/self/stat')) {
      throw new DriverError('runtime-unavailable', 'the process driver needs /proc (Linux) to recognise its processes');
    }
    const names = await fsp.readdir(root).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [] as string[];
      throw error;
    });
    for (const key of names) {
      if (!keyPattern.test(key)) continue;
      let record: ProcessRecord;
      try {
        record = JSON.parse(await fsp.readFile(path.join(root, key, instanceFile), 'utf8')) as ProcessRecord;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') log(`process inventory ${key} unreadable: ${String(error)}`);
        continue;
      }
      if (record.key !== key) continue;
      const entry: Entry = { record, child: null, restartTimer: null, crashStreak: 0, stopping: false, starting: false, judging: false };
      entries.set(key, entry);
      if (record.pid === null && record.token !== null) adoptByMarker(entry);
    }
    pollTimer = setInterval(() => {
      for (const entry of entries.values()) checkAdopted(entry);
    }, pollIntervalMs);
    pollTimer.unref();
    for (const entry of entries.values()) checkAdopted(entry);
  }

  /** The earlier agent died between spawn and recording the pid: the run's leader carries its marker. */
  function adoptByMarker(entry: Entry): void {
    const record = entry.record;
    for (const pid of markedRemnants(record)) {
      const stat = readProcStat(pid);
      if (stat === null || stat.pgrp !== pid) continue;
      record.pid = pid;
      record.startTime = stat.startTime;
      record.bootId = bootId;
      record.startedAt ??= new Date(now()).toISOString();
      log(`process ${record.key}: adopted pid ${pid} by its marker`);
      void withLock(record.key, () => persist(entry)).catch((error: unknown) => log(`process ${record.key}: ${String(error)}`));
      return;
    }
  }

  function ready(): Promise<void> {
    if (closed) return Promise.reject(new Error('the process driver is closed'));
    loaded ??= load();
    return loaded;
  }

  function toInstance(entry: Entry): Instance {
    const record = entry.record;
    const running = checkAdopted(entry);
    return {
      key: record.key,
      specHash: record.specHash,
      deployment: record.deployment,
      component: record.component,
      version: record.version,
      running,
      exitCode: running ? null : record.exitCode,
      startedAt: record.startedAt,
      ports: declaredPorts(record.spec.ports),
      restarts: record.restarts,
    };
  }

  function newEntry(spec: InstanceSpec, restarts: number): Entry {
    const component = spec.component;
    return {
      record: {
        format: 1,
        key: spec.key,
        specHash: spec.specHash,
        agentId: opts.agentId,
        deployment: component.deployment,
        component: component.name,
        version: component.version,
        spec: component,
        desired: 'running',
        token: null,
        pid: null,
        startTime: null,
        bootId,
        startedAt: null,
        exitCode: null,
        restarts,
        lastError: null,
      },
      child: null,
      restartTimer: null,
      crashStreak: 0,
      stopping: false,
      starting: false,
      judging: false,
    };
  }

  async function stopEntry(entry: Entry): Promise<void> {
    entry.stopping = true;
    if (entry.restartTimer !== null) clearTimeout(entry.restartTimer);
    entry.restartTimer = null;
    try {
      if (entry.record.desired !== 'stopped') {
        // Durable before the signal: an agent that dies mid-stop must not restart it afterwards.
        entry.record.desired = 'stopped';
        await persist(entry);
      }
      await stopRun(entry);
    } finally {
      entry.stopping = false;
    }
  }

  return {
    kind: 'process',

    async list() {
      await ready();
      return [...entries.values()].map(toInstance);
    },

    async create(spec) {
      checkKey(spec.key);
      if (spec.component.image) throw new Error(`component ${spec.component.name} has an image; the process driver runs commands`);
      if (!spec.component.command?.length) {
        throw new DriverError('start-failed', `component ${spec.component.name} has no command to run`);
      }
      await ready();
      await withLock(spec.key, async () => {
        const existing = entries.get(spec.key);
        if (existing && existing.record.specHash === spec.specHash && leaderOf(existing.record).leader === 'alive') {
          if (existing.record.desired !== 'running') {
            existing.record.desired = 'running';
            await persist(existing);
          }
          return;
        }
        if (existing) await stopEntry(existing);
        const restarts = existing && existing.record.specHash === spec.specHash ? existing.record.restarts : 0;
        const entry = newEntry(spec, restarts);
        entries.set(spec.key, entry);
        await launch(entry, true);
      });
    },

    async start(key) {
      checkKey(key);
      await ready();
      await withLock(key, async () => {
        const entry = entries.get(key);
        if (!entry) throw new DriverError('start-failed', `no process instance ${key} to start`);
        if (entry.restartTimer !== null) clearTimeout(entry.restartTimer);
        entry.restartTimer = null;
        if (leaderOf(entry.record).leader === 'alive') {
          if (entry.record.desired !== 'running') {
            entry.record.desired = 'running';
            await persist(entry);
          }
          return;
        }
        entry.crashStreak = 0;
        entry.stopping = true;
        try {
          await stopRun(entry);
        } finally {
          entry.stopping = false;
        }
        await launch(entry, true);
      });
    },

    async remove(key) {
      checkKey(key);
      await ready();
      await withLock(key, async () => {
        const entry = entries.get(key);
        if (!entry) return;
        await stopEntry(entry);
        entries.delete(key);
        await deleteInventory(key);
      });
    },

    async readLogs(key, cursor, maxBytes, maxLines) {
      checkKey(key);
      const dir = dirOf(key);
      const file = path.join(dir, outputFile);
      return emptyIfRead(file, await readOutput(file, path.join(dir, rotatedOutputFile), cursor, maxBytes, maxLines), maxOutputBytes);
    },

    async exec(key, command, signal) {
      await ready();
      const entry = entries.get(key);
      if (!entry) throw new Error(`no process instance ${key}`);
      return runBeside(command, environment(entry.record, null), entry.record.spec.workingDir, signal);
    },

    async close() {
      closed = true;
      if (pollTimer !== null) clearInterval(pollTimer);
      for (const entry of entries.values()) {
        if (entry.restartTimer !== null) clearTimeout(entry.restartTimer);
        entry.restartTimer = null;
      }
      await Promise.allSettled([...locks.values()]);
      if (loaded) await loaded.catch(() => {});
      // Processes keep running: the next agent adopts them from the inventory.
    },
  };
}

function onceEvent(emitter: ChildProcess, event: string): Promise<unknown[]> {
  return new Promise((resolve) => emitter.once(event, (...args: unknown[]) => resolve(args)));
}

const maxExecOutput = 64 * 1024;

/**
 * Runs a command on the host beside the instance. It gets its own process group so an abort
 * ends whatever the command started, not just the command.
 */
function runBeside(
  command: string[],
  env: Record<string, string>,
  cwd: string | undefined,
  signal: AbortSignal,
): Promise<{ exitCode: number; output: string }> {
  signal.throwIfAborted();
  const program = command[0];
  if (program === undefined) return Promise.resolve({ exitCode: 127, output: 'empty command' });
  return new Promise((resolve, reject) => {
    let output = '';
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-maxExecOutput);
    };
    const child = spawn(program, command.slice(1), { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const onAbort = () => {
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    };
    signal.addEventListener('abort', onAbort, { once: true });
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.once('error', (error: NodeJS.ErrnoException) => {
      signal.removeEventListener('abort', onAbort);
      if (signal.aborted) return reject(signal.reason);
      // The shell's convention, so a probe can say "not found" the way an operator expects.
      const exitCode = error.code === 'ENOENT' ? 127 : error.code === 'EACCES' ? 126 : 1;
      resolve({ exitCode, output: `cannot run ${program}: ${error.code ?? error.message}` });
    });
    child.once('close', (code, sig) => {
      signal.removeEventListener('abort', onAbort);
      if (signal.aborted) return reject(signal.reason);
      resolve({ exitCode: exitCodeOf(code, sig) ?? 1, output });
    });
  });
}
