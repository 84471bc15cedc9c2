import { setTimeout as sleepFor } from 'node:timers/promises';
import { createAgent, type Agent } from '../agent/create-agent.ts';
import { createFakeDriver, fakeHealth, type FakeDriver, type FakeOutcome } from '../agent/drivers/fake/fake-driver.ts';
import type { RuntimeKind } from '../agent/drivers/driver.ts';
import { createMemoryStorage } from '../agent/storage/memory-storage.ts';
import type { Backoff } from '../agent/sync/backoff.ts';
import { createServerClient, type Transport } from '../agent/sync/client.ts';
import type { DesiredComponent, Facts } from '../protocol/messages.ts';
import { loadPrivateKey } from '../protocol/signing.ts';
import { createInjectClient, type InjectableApp } from './inject-client.ts';
import { goodLink, withLink, type LinkState } from './link.ts';
import { simulatedHostMetrics } from './host-metrics.ts';
import { createRandom } from './random.ts';

/**
 * A virtual fleet: thousands of real agents (createAgent, the real sync client, planner,
 * executors, ledger and outbox) in one process, each with in-memory storage, fake runtimes
 * scripted per device, and a link to the in-process server that a drill can cut, slow or make lossy.
 */

export type SimDevice = {
  name: string;
  site: string;
  labels: { region: string; hardware: string; tier: 'store' };
  /** What the device reports about itself; `hardware` is what a scenario's bad release may hinge on. */
  facts: Facts & { hardware: string; arch: string; model: string };
};

export type SimBehaviour = (device: SimDevice, component: DesiredComponent) => FakeOutcome;

export type SimFleetOptions = {
  /**
   * The server. With `app`, requests are handed to it in-process (no sockets); without, they go
   * over real HTTP to `url` with the agent's own fetch transport (a server in another process,
   * which can be restarted and measured).
   */
  server: { app?: InjectableApp; url: string; enrollToken: string };
  devices: number;
  sites: number;
  seed: number;
  regions?: readonly string[];
  hardware?: readonly string[];
  pollSeconds?: number;
  reconcileSeconds?: number;
  behaviour: SimBehaviour;
  /** Real milliseconds per scenario millisecond, for fake crashes, downloads and health checks (default 1). */
  timeScale?: number;
  /** Device starts are spread over this window so polls do not arrive in lockstep (default: pollSeconds). */
  spreadSeconds?: number;
  /** Devices enrolling at once (default 32). */
  concurrency?: number;
  now?: () => number;
  log?: (device: string, message: string) => void;
  /** How the agents back off from an unreachable or busy server (the agent's default when absent). */
  backoff?: Backoff;
  /** Simulated host metrics (CPU, memory) sent every so many seconds; none when absent. */
  hostMetricsSeconds?: number;
  /** Sees each answer a device got (benches time acknowledgements with it). */
  onAnswer?: (device: string, url: string, init: RequestInit, response: Response) => void;
};

export type SimFleet = {
  readonly devices: readonly SimDevice[];
  /**
   * Enrolls every device and starts its loop, spread over `spreadSeconds`; resolves when all are
   * running. A device whose link is down keeps retrying its enrollment, so cut links after this.
   */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** An offline device's requests fail at once with EHOSTUNREACH (`unavailable` to the agent), as over a cut link. */
  setOnline(name: string, online: boolean): void;
  /** Every request of the device waits this long first. */
  setLinkDelay(name: string, ms: number): void;
  /** This share of the device's requests is lost (connection reset). */
  setLinkLoss(name: string, ratio: number): void;
  link(name: string): Readonly<LinkState>;
  /** Replaces what the fake runtimes do from now on (a drill can fix a bad version, or break a good one). */
  setBehaviour(behaviour: SimBehaviour): void;
  /** Every version that ever ran on the device. */
  everRan(name: string): Set<string>;
  /** A device's fake runtime, to act on it by hand (stop or remove an instance). */
  driver(name: string, kind: RuntimeKind): FakeDriver;
  agent(name: string): Agent;
  /** Requests the fleet's agents made, by route, and how many never got an answer (link faults, timeouts). */
  stats(): SimStats;
};

/** `busy`: answers 429 (the server shedding load); `failed`: requests that got no answer at all. */
export type SimStats = { enroll: number; session: number; desired: number; status: number; other: number; failed: number; busy: number };

export const defaultRegions = ['eu-west', 'eu-north', 'us-east', 'ap-south'] as const;
export const defaultHardware = ['amd64/nuc', 'arm64/rpi4', 'arm64/jetson'] as const;

/**
 * Pure: the fleet a seed describes. Every site gets a device before any gets a second, then the
 * rest are spread at random; a site's devices share its region; hardware is drawn per device.
 */
export function layoutFleet(opts: { devices: number; sites: number; seed: number; regions?: readonly string[]; hardware?: readonly string[] }): SimDevice[] {
  if (!Number.isInteger(opts.devices) || opts.devices < 0) throw new RangeError('devices: a whole number of at least 0');
  if (!Number.isInteger(opts.sites) || opts.sites < 1) throw new RangeError('sites: a whole number of at least 1');
  const random = createRandom(opts.seed);
  const regions = opts.regions ?? defaultRegions;
  const hardware = opts.hardware ?? defaultHardware;
  const siteWidth = Math.max(3, String(opts.sites).length);
  const deviceWidth = Math.max(5, String(opts.devices).length);
  const siteRegions = Array.from({ length: opts.sites }, () => random.pick(regions));
  return Array.from({ length: opts.devices }, (_, i) => {
    const siteIndex = i < opts.sites ? i : random.int(opts.sites);
    const hw = random.pick(hardware);
    const [arch = hw, model = hw] = hw.split('/');
    const name = `dev-${String(i + 1).padStart(deviceWidth, '0')}`;
    return {
      name,
      site: `site-${String(siteIndex + 1).padStart(siteWidth, '0')}`,
      labels: { region: siteRegions[siteIndex]!, hardware: hw, tier: 'store' },
      facts: { hostname: name, hardware: hw, arch, model, simulated: true },
    };
  });
}

type SimNode = {
  device: SimDevice;
  agent: Agent;
  drivers: { container: FakeDriver; process: FakeDriver };
  link: LinkState;
};

export function createSimFleet(opts: SimFleetOptions): SimFleet {
  const devices = layoutFleet(opts);
  const now = opts.now ?? Date.now;
  const timeScale = opts.timeScale ?? 1;
  const pollSeconds = opts.pollSeconds ?? 30;
  const spreadMs = (opts.spreadSeconds ?? pollSeconds) * 1000;
  const concurrency = Math.max(1, opts.concurrency ?? 32);
  // Independent streams, so changing how often links lose packets does not reshuffle start times.
  const jitter = createRandom(opts.seed ^ 0x5eed);
  const loss = createRandom(opts.seed ^ 0x1055);
  const lossRandom = () => loss.next();
  const backoffStream = createRandom(opts.seed ^ 0xbac0);
  const backoffRandom = () => backoffStream.next();
  let behaviour = opts.behaviour;
  const stopping = new AbortController();
  const stats: SimStats = { enroll: 0, session: 0, desired: 0, status: 0, other: 0, failed: 0, busy: 0 };
  let started = false;

  const nodes = new Map<string, SimNode>();
  for (const device of devices) nodes.set(device.name, createNode(device));

  function createNode(device: SimDevice): SimNode {
    const outcome = (component: DesiredComponent) => behaviour(device, component);
    const containers = createFakeDriver({ kind: 'container', behaviour: outcome, now, timeScale });
    const processes = createFakeDriver({ kind: 'process', behaviour: outcome, now, timeScale });
    const link = goodLink();
    const storage = createMemoryStorage();
    // The client signs session requests with the agent's key, which exists only once the agent
    // has made its identity; it is read when a session is needed (about once an hour), not kept twice.
    let agent: Agent | null = null;
    const privateKey = () => {
      const identity = agent?.identity();
      return identity ? loadPrivateKey(identity.privateKey) : null;
    };
    const wrap = (transport: Transport) => counted(withLink(transport, link, lossRandom), stats, device.name, opts.onAnswer);
    const { app } = opts.server;
    const client = app
      ? createInjectClient({ app, serverUrl: opts.server.url, device: device.name, privateKey, now, wrap })
      : createServerClient({ serverUrl: opts.server.url, device: device.name, privateKey, now, transport: wrap((url, init) => fetch(url, init)) });
    agent = createAgent({
      dataDir: `sim:${device.name}`,
      storage,
      serverUrl: opts.server.url,
      enrollToken: opts.server.enrollToken,
      name: device.name,
      site: device.site,
      labels: device.labels,
      drivers: { container: containers, process: processes },
      waitForHealth: fakeHealth([processes, containers]),
      client,
      // A simulated device reports its own facts (its hardware above all), not the build box's.
      facts: () => device.facts,
      ...(opts.hostMetricsSeconds === undefined
        ? { hostMetrics: null }
        : { hostMetrics: simulatedHostMetrics(opts.seed * 100_003 + devices.indexOf(device)), metricsEveryMs: opts.hostMetricsSeconds * 1000, telemetrySeconds: opts.hostMetricsSeconds }),
      now,
      pollSeconds,
      ...(opts.reconcileSeconds === undefined ? {} : { reconcileSeconds: opts.reconcileSeconds }),
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
      random: backoffRandom,
      ...(opts.log ? { log: (message: string) => opts.log!(device.name, message) } : {}),
    });
    return { device, agent, drivers: { container: containers, process: processes }, link };
  }

  function node(name: string): SimNode {
    const found = nodes.get(name);
    if (!found) throw new RangeError(`no simulated device "${name}"`);
    return found;
  }

  return {
    devices,

    async start() {
      if (started) throw new Error('this simulated fleet was started already');
      started = true;
      const offsets = devices.map(() => jitter.next() * spreadMs);
      const order = devices.map((_, i) => i).sort((a, b) => offsets[a]! - offsets[b]!);
      const began = performance.now();
      const failures: string[] = [];
      let next = 0;
      const worker = async () => {
        while (next < order.length && !stopping.signal.aborted) {
          const index = order[next++]!;
          const wait = began + offsets[index]! - performance.now();
          if (wait > 0) await sleepFor(wait, undefined, { signal: stopping.signal }).catch(() => undefined);
          if (stopping.signal.aborted) return;
          const { agent, device } = nodes.get(devices[index]!.name)!;
          await agent.start().catch((error: unknown) => failures.push(`${device.name}: ${(error as Error).message}`));
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, devices.length) }, worker));
      if (failures.length > 0) throw new Error(`${failures.length} of ${devices.length} simulated devices did not start; first: ${failures[0]}`);
    },

    async stop() {
      stopping.abort();
      await Promise.all([...nodes.values()].map(async ({ agent, drivers }) => {
        await agent.stop();
        await drivers.container.close();
        await drivers.process.close();
      }));
    },

    setOnline(name, online) {
      node(name).link.online = online;
    },
    setLinkDelay(name, ms) {
      node(name).link.delayMs = Math.max(0, ms);
    },
    setLinkLoss(name, ratio) {
      node(name).link.lossRatio = Math.min(1, Math.max(0, ratio));
    },
    link: (name) => ({ ...node(name).link }),
    setBehaviour(next) {
      behaviour = next;
    },
    everRan(name) {
      const { drivers } = node(name);
      return new Set([...drivers.process.everRan(), ...drivers.container.everRan()]);
    },
    stats: () => ({ ...stats }),
    driver: (name, kind) => node(name).drivers[kind],
    agent: (name) => node(name).agent,
  };
}

function counted(inner: Transport, stats: SimStats, device: string, onAnswer: SimFleetOptions['onAnswer']): Transport {
  return (url, init) => {
    if (url.endsWith('/v1/device/desired-state')) stats.desired++;
    else if (url.endsWith('/v1/device/status')) stats.status++;
    else if (url.endsWith('/v1/device/session')) stats.session++;
    else if (url.endsWith('/v1/enroll')) stats.enroll++;
    else stats.other++;
    return inner(url, init).then(
      (response) => {
        if (response.status === 429) stats.busy++;
        onAnswer?.(device, url, init, response);
        return response;
      },
      (error: unknown) => {
        stats.failed++;
        throw error;
      },
    );
  };
}
