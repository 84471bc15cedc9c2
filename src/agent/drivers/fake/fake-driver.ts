import { setTimeout as sleepFor } from 'node:timers/promises';
import type { DesiredComponent } from '../../../protocol/messages.ts';
import type { HealthCheck } from '../../../protocol/resources.ts';
import type { ProbeResult } from '../../health/health.ts';
import { formatSeconds, type ProbeTarget } from '../../health/probe.ts';
import { DriverError, type Instance, type InstanceSpec, type RuntimeDriver, type RuntimeKind } from '../driver.ts';

/**
 * A runtime driver that runs nothing: instances are entries in a Map whose fate a scenario
 * scripts ("2.0.1 crashes 500 ms after start on arm64", "the download fails", "a slow pull").
 * It lets thousands of real agents run in one process (the simulator) and lets tests drive the
 * agent through failures without containers or processes.
 */

/** What happens to one component on this device. Durations are in scenario time (see `timeScale`). */
export type FakeOutcome = {
  download?: 'ok' | 'fail';
  start?: 'ok' | 'fail';
  /** The instance exits with code 1 this long after each start. */
  crashAfterMs?: number;
  /** How long fetching the image or program takes. */
  downloadMs?: number;
};
export type FakeBehaviour = (component: DesiredComponent) => FakeOutcome;

export type FakeDriverOptions = {
  kind?: RuntimeKind;
  behaviour: FakeBehaviour;
  now?: () => number;
  /**
   * Real milliseconds per scenario millisecond (default 1). A scenario says "crashes after
   * 500 ms" and "healthy after 3 s running"; at 0.05 both happen twenty times sooner, in the same
   * order, so a drill written in real-world durations runs in a test's time.
   */
  timeScale?: number;
  /** How a slow download waits (tests substitute one they control). */
  sleep?: (ms: number) => Promise<void>;
};

export type FakeDriver = RuntimeDriver & {
  readonly timeScale: number;
  /** The clock the driver judges crashes by. */
  readonly now: () => number;
  /** What `list()` would return, synchronously. */
  instances(): Instance[];
  /** Every version (the component's `version`) that was ever running on this driver. */
  everRan(): Set<string>;
  /** An operator stopped it on the device (`docker stop`): it stays, not running, exit code 143. */
  stopByHand(key: string): void;
  /** An operator deleted it on the device (`docker rm -f`). */
  removeByHand(key: string): void;
  /** When the next running instance is scripted to crash, or null: lets a fake health check wake exactly then. */
  nextExitAt(): number | null;
};

/** Exit code after a hand stop: SIGTERM, as an engine reports it. */
const STOPPED_BY_HAND = 143;
const CRASH_EXIT_CODE = 1;

type FakeRecord = {
  key: string;
  specHash: string;
  component: DesiredComponent;
  ports: Record<number, number>;
  /** Null while created but never started. */
  startedAtMs: number | null;
  /** The same instant as ISO text, kept because `list()` runs on every reconcile pass. */
  startedAt: string | null;
  crashAtMs: number | null;
  /** Set when stopped by hand or when a start failed: the instance exists and does not run. */
  stoppedExitCode: number | null;
};

export function createFakeDriver(opts: FakeDriverOptions): FakeDriver {
  return new FakeRuntime(opts.kind ?? 'process', opts.behaviour, opts.now ?? Date.now, opts.timeScale ?? 1, opts.sleep ?? ((ms) => sleepFor(ms)));
}

const isRunning = (r: FakeRecord, at: number) => r.startedAtMs !== null && r.stoppedExitCode === null && (r.crashAtMs === null || at < r.crashAtMs);

function view(r: FakeRecord, at: number): Instance {
  const running = isRunning(r, at);
  const crashed = !running && r.stoppedExitCode === null && r.crashAtMs !== null && at >= r.crashAtMs;
  return {
    key: r.key,
    specHash: r.specHash,
    deployment: r.component.deployment,
    component: r.component.name,
    version: r.component.version,
    running,
    exitCode: running ? null : crashed ? CRASH_EXIT_CODE : r.stoppedExitCode,
    startedAt: r.startedAt,
    ports: r.ports,
  };
}

/**
 * A class rather than an object of closures, for one reason: the simulator keeps two of these per
 * device, and methods on a prototype cost nothing per instance (about 1.5 KB less per driver).
 */
class FakeRuntime implements FakeDriver {
  readonly kind: RuntimeKind;
  readonly now: () => number;
  readonly timeScale: number;
  readonly #behaviour: FakeBehaviour;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #records = new Map<string, FakeRecord>();
  // Image cache: what was fetched once is not fetched again, as with a real engine.
  readonly #downloaded = new Set<string>();
  readonly #ran = new Set<string>();

  constructor(kind: RuntimeKind, behaviour: FakeBehaviour, now: () => number, timeScale: number, sleep: (ms: number) => Promise<void>) {
    this.kind = kind;
    this.#behaviour = behaviour;
    this.#sleep = sleep;
    this.now = now;
    this.timeScale = timeScale;
  }

  async list(): Promise<Instance[]> {
    return this.instances();
  }

  async prepare(spec: InstanceSpec): Promise<void> {
    await this.#download(spec.component);
  }

  async create(spec: InstanceSpec): Promise<void> {
    const existing = this.#records.get(spec.key);
    if (existing && existing.specHash === spec.specHash && isRunning(existing, this.now())) return;
    await this.#download(spec.component);
    // A different spec, or one that is not running: replace it, never duplicate (as the container driver does).
    const r: FakeRecord = {
      key: spec.key,
      specHash: spec.specHash,
      component: spec.component,
      ports: declaredPortsToThemselves(spec.component.ports),
      startedAtMs: null,
      startedAt: null,
      crashAtMs: null,
      stoppedExitCode: null,
    };
    this.#records.set(spec.key, r);
    this.#run(r);
  }

  async start(key: string): Promise<void> {
    const r = this.#records.get(key);
    if (!r) throw new DriverError('start-failed', `no instance ${key} to start`);
    if (isRunning(r, this.now())) return;
    this.#run(r);
  }

  async remove(key: string): Promise<void> {
    this.#records.delete(key);
  }

  async exec(key: string): Promise<{ exitCode: number; output: string }> {
    const r = this.#records.get(key);
    if (!r) throw new DriverError('start-failed', `no instance ${key} to exec in`);
    return isRunning(r, this.now()) ? { exitCode: 0, output: '' } : { exitCode: 1, output: `${key} is not running` };
  }

  async close(): Promise<void> {}

  instances(): Instance[] {
    const at = this.now();
    const out: Instance[] = [];
    for (const r of this.#records.values()) out.push(view(r, at));
    return out;
  }

  everRan(): Set<string> {
    return new Set(this.#ran);
  }

  stopByHand(key: string): void {
    const r = this.#records.get(key);
    if (r && isRunning(r, this.now())) r.stoppedExitCode = STOPPED_BY_HAND;
  }

  removeByHand(key: string): void {
    this.#records.delete(key);
  }

  nextExitAt(): number | null {
    const at = this.now();
    let next: number | null = null;
    for (const r of this.#records.values()) {
      if (r.crashAtMs !== null && isRunning(r, at) && (next === null || r.crashAtMs < next)) next = r.crashAtMs;
    }
    return next;
  }

  async #download(component: DesiredComponent): Promise<void> {
    const artifact = component.image ?? `${component.deployment}.${component.name}@${component.version}`;
    if (this.#downloaded.has(artifact)) return;
    const outcome = this.#behaviour(component);
    if (outcome.downloadMs) await this.#sleep(outcome.downloadMs * this.timeScale);
    if (outcome.download === 'fail') throw new DriverError('download-failed', `fetching ${artifact} failed: not found (simulated)`);
    this.#downloaded.add(artifact);
  }

  /** Starts a created instance as the behaviour says; a failed start leaves it created and stopped, as an engine does. */
  #run(r: FakeRecord): void {
    const outcome = this.#behaviour(r.component);
    if (outcome.start === 'fail') {
      r.startedAtMs = null;
      r.startedAt = null;
      r.crashAtMs = null;
      r.stoppedExitCode = CRASH_EXIT_CODE;
      throw new DriverError('start-failed', `version ${r.component.version} did not start: exited with code ${CRASH_EXIT_CODE} (simulated)`);
    }
    const at = this.now();
    r.startedAtMs = at;
    r.startedAt = new Date(at).toISOString();
    r.crashAtMs = outcome.crashAfterMs === undefined ? null : at + outcome.crashAfterMs * this.timeScale;
    r.stoppedExitCode = null;
    this.#ran.add(r.component.version);
  }
}

/** A fake instance listens where it says: every declared container port is reachable at the same number. */
function declaredPortsToThemselves(ports: readonly string[] | undefined): Record<number, number> {
  const out: Record<number, number> = {};
  for (const entry of ports ?? []) {
    const port = Number((entry.split('/')[0] ?? '').split(':').at(-1));
    if (Number.isInteger(port)) out[port] = port;
  }
  return out;
}

export type FakeHealthOptions = {
  /** Defaults to the driver's. */
  timeScale?: number;
  /** Scenario seconds a component with no `running` check must stay up (the real probe's default is 3). */
  defaultSeconds?: number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
};

/**
 * A `waitForHealth` for fake instances, with no sockets: every check counts as "still running
 * after `running.seconds`" (or `defaultSeconds`), scaled by the time factor. It sleeps once, until
 * the required time or the moment a scripted crash is due, whichever comes first, so a crashing
 * version fails as soon as it exits, with the detail the real probe gives ("exited with code 1
 * after 0.5s", in scenario time). Given several drivers (an agent's container and process
 * runtimes), the clock and time factor are the first one's.
 */
export function fakeHealth(
  drivers: FakeDriver | readonly [FakeDriver, ...FakeDriver[]],
  opts: FakeHealthOptions = {},
): (check: HealthCheck | undefined, target: ProbeTarget, signal: AbortSignal) => Promise<ProbeResult> {
  // One agent has one health waiter for all its runtimes; any of them may hold the instance checked.
  const all: readonly FakeDriver[] = Array.isArray(drivers) ? drivers : [drivers as FakeDriver];
  const driver = all[0]!;
  const nextExitAt = () => {
    let next: number | null = null;
    for (const d of all) {
      const at = d.nextExitAt();
      if (at !== null && (next === null || at < next)) next = at;
    }
    return next;
  };
  const timeScale = opts.timeScale ?? driver.timeScale;
  const defaultSeconds = opts.defaultSeconds ?? 3;
  const sleep = opts.sleep ?? ((ms: number, signal: AbortSignal) => sleepFor(ms, undefined, { signal }));
  return async (check, target, signal) => {
    signal.throwIfAborted();
    const requiredMs = (check?.running?.seconds ?? defaultSeconds) * 1000 * timeScale;
    const started = driver.now();
    // The scenario-time seconds an operator would read.
    const shown = (realMs: number) => formatSeconds(realMs / timeScale);
    let exitDueAt: number | null = null;
    for (;;) {
      const state = await target.isRunning();
      signal.throwIfAborted();
      const at = driver.now();
      if (!state.running) {
        // Woken for a scripted crash: that instant is when it exited, not when the timer fired.
        const exitedAt = exitDueAt !== null && exitDueAt <= at ? exitDueAt : at;
        const elapsed = shown(exitedAt - started);
        return { ok: false, detail: state.exitCode === null ? `stopped running after ${elapsed}` : `exited with code ${state.exitCode} after ${elapsed}` };
      }
      if (at - started >= requiredMs) return { ok: true, detail: `running for ${shown(at - started)}` };
      const nextExit = nextExitAt();
      exitDueAt = nextExit !== null && nextExit < started + requiredMs ? nextExit : null;
      const wakeAt = exitDueAt ?? started + requiredMs;
      await sleep(Math.max(0, wakeAt - at), signal);
    }
  };
}
