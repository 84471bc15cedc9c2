import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DeviceView, DriftEntry } from '../../src/protocol/resources.ts';
import { findProcesses, killPids, run, spawnChild, workloadPids, type Child } from './child.ts';
import { removeAgentContainers } from './podman.ts';
import { waitFor, type WaitOptions } from './wait.ts';

/**
 * A fleet of real processes for end-to-end tests: one `driftless server`, any number of
 * `driftless agent`s, and the `driftless` CLI, all started from the checkout's bin/driftless.
 * Everything lives in one temporary directory; `cleanup()` kills what the fleet started, removes
 * the containers and workload processes of its own devices (never anyone else's) and the directory.
 */

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const DRIFTLESS = join(ROOT, 'bin/driftless');

/** A short random tag for names that must not collide with another test file, a rerun or a developer. */
export function uniqueTag(bytes = 3): string {
  return randomBytes(bytes).toString('hex');
}

/** Native-process workloads in the tests are Debian's static busybox (httpd, sleep). */
export const BUSYBOX = '/bin/busybox';

/** Fails (never skips) when busybox-static is missing, saying how to fix the machine. */
export function assertBusybox(): void {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: run \`bash scripts/setup-system.sh\` as root (it installs busybox-static)`);
}

export type ServerHandle = {
  child: Child;
  url: string;
  port: number;
  dataDir: string;
  stop(): Promise<void>;
  kill(): Promise<void>;
};

export type AgentHandle = {
  child: Child;
  name: string;
  dataDir: string;
  stop(): Promise<void>;
  kill(): Promise<void>;
};

export type AgentOptions = {
  name: string;
  site?: string;
  labels?: Record<string, string>;
  /** Defaults to `<fleet dir>/agent-<name>`; pass the same one again to restart an agent. */
  dataDir?: string;
  /** Defaults to the fleet's server URL (a proxy's URL, say, to stand between them). */
  serverUrl?: string;
  enrollToken?: string;
  /** A command prefix that puts the agent somewhere else, e.g. `ip netns exec NS`. */
  wrap?: readonly string[];
  extraArgs?: readonly string[];
};

export type CliResult = { code: number | null; stdout: string; stderr: string };

export type Fleet = {
  readonly dir: string;
  readonly adminToken: string;
  readonly enrollToken: string;
  /** Environment for every process: the CLI config file points into the fleet's directory. */
  readonly env: NodeJS.ProcessEnv;
  server: ServerHandle | null;
  readonly url: string;
  startServer(opts?: { listen?: string; dataDir?: string; wrap?: readonly string[]; extraArgs?: readonly string[] }): Promise<ServerHandle>;
  startAgent(opts: AgentOptions): AgentHandle;
  /** Runs `driftless ARGS --server URL --token T` (unless `raw`); never throws on a non-zero exit. */
  cli(args: readonly string[], opts?: { raw?: boolean; token?: string }): Promise<CliResult>;
  /** Runs a CLI command that must succeed and print JSON. */
  cliJson<T>(args: readonly string[]): Promise<T>;
  /** Writes a file into the fleet's directory and returns its path. */
  writeFile(name: string, text: string): string;
  /** Writes a manifest and applies it with the CLI; fails the test unless it succeeds. */
  apply(file: string, manifest: string): Promise<CliResult>;
  /** The public HTTP API with the admin token (or `token: null` for none). */
  api(path: string, init?: { method?: string; body?: string; headers?: Record<string, string>; token?: string | null }): Promise<{ status: number; body: unknown; text: string }>;
  devices(): Promise<DeviceView[]>;
  drift(): Promise<DriftEntry[]>;
  deviceDetail(name: string): Promise<DeviceDetail>;
  /** Polls the API until `done` holds for the device list; fails with the last list and the logs. */
  waitForDevices(what: string, done: (devices: DeviceView[]) => boolean, opts?: WaitOptions): Promise<DeviceView[]>;
  /** The stderr tails of every process, for failure messages. */
  diagnostics(): string;
  /** Device names whose containers and workload processes cleanup() removes. */
  own(...devices: string[]): void;
  cleanup(): Promise<void>;
};

export type DeviceEventView = { seq: number; at: string; type: string; component?: string; message: string };
export type DeviceDetail = DeviceView & { drift: DriftEntry[]; events: DeviceEventView[] };

export function createFleet(prefix: string, opts: { adminToken?: string; enrollToken?: string } = {}): Fleet {
  const dir = mkdtempSync(join(tmpdir(), `driftless-e2e-${prefix}-`));
  const adminToken = opts.adminToken ?? `admin-${uniqueTag(8)}`;
  const enrollToken = opts.enrollToken ?? `enroll-${uniqueTag(8)}`;
  const env: NodeJS.ProcessEnv = { ...process.env, DRIFTLESS_CONFIG: join(dir, 'cli-config.json') };
  // A developer's own settings must not leak in and send the CLI to another server.
  delete env.DRIFTLESS_SERVER;
  delete env.DRIFTLESS_TOKEN;
  const children: Child[] = [];
  const devices = new Set<string>();

  const fleet: Fleet = {
    dir,
    adminToken,
    enrollToken,
    env,
    server: null,
    get url() {
      if (!fleet.server) throw new Error('the fleet has no server running');
      return fleet.server.url;
    },

    async startServer({ listen = '127.0.0.1:0', dataDir = join(dir, 'server'), wrap = [], extraArgs = [] } = {}) {
      const args = ['server', '--data', dataDir, '--listen', listen, '--admin-token', adminToken, '--enroll-token', enrollToken, '--poll-interval', '1', ...extraArgs];
      const [command, ...rest] = [...wrap, DRIFTLESS, ...args];
      const child = spawnChild(command!, rest, { cwd: dir, env, label: `server (${listen})` });
      children.push(child);
      const [, url, port] = await child.waitForStderr(/driftless server listening on (http:\/\/[^\s]+:(\d+))/, { timeoutMs: 30_000 });
      const handle: ServerHandle = {
        child,
        url: url!,
        port: Number(port),
        dataDir,
        async stop() {
          await child.stop();
        },
        async kill() {
          await child.kill();
        },
      };
      fleet.server = handle;
      return handle;
    },

    startAgent(o) {
      devices.add(o.name);
      const dataDir = o.dataDir ?? join(dir, `agent-${o.name}`);
      const args = [
        'agent',
        '--server', o.serverUrl ?? fleet.url,
        '--enroll-token', o.enrollToken ?? enrollToken,
        '--name', o.name,
        '--data', dataDir,
        '--poll-interval', '1',
        '--reconcile-interval', '1',
        ...(o.site ? ['--site', o.site] : []),
        ...Object.entries(o.labels ?? {}).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
        ...(o.extraArgs ?? []),
      ];
      const [command, ...rest] = [...(o.wrap ?? []), DRIFTLESS, ...args];
      // The agent's working directory is inherited by the workloads it starts: inside the fleet's
      // directory, so clean-up can recognise them even if their marker is missing.
      const cwd = join(dir, 'cwd');
      mkdirSync(cwd, { recursive: true });
      const child = spawnChild(command!, rest, { cwd, env, label: `agent ${o.name}` });
      children.push(child);
      return {
        child,
        name: o.name,
        dataDir,
        async stop() {
          await child.stop();
        },
        async kill() {
          await child.kill();
        },
      };
    },

    async cli(args, { raw = false, token = adminToken } = {}) {
      const connection = raw ? [] : ['--server', fleet.url, '--token', token];
      return run(DRIFTLESS, [...args, ...connection], { cwd: dir, env, timeoutMs: 60_000 });
    },

    async cliJson<T>(args: readonly string[]) {
      const result = await fleet.cli(args);
      assert.equal(result.code, 0, `driftless ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
      try {
        return JSON.parse(result.stdout) as T;
      } catch {
        throw new Error(`driftless ${args.join(' ')} printed no JSON: ${result.stdout}`);
      }
    },

    async apply(file, manifest) {
      const result = await fleet.cli(['apply', '-f', fleet.writeFile(file, manifest)]);
      assert.equal(result.code, 0, `apply ${file} failed: ${result.stderr}`);
      return result;
    },
    writeFile(name, text) {
      const path = join(dir, name);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, text);
      return path;
    },

    async api(path, { method = 'GET', body, headers = {}, token = adminToken } = {}) {
      const response = await fetch(`${fleet.url}${path}`, {
        method,
        headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...headers },
        ...(body === undefined ? {} : { body }),
        signal: AbortSignal.timeout(15_000),
      });
      const text = await response.text();
      let parsed: unknown = null;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        parsed = null;
      }
      return { status: response.status, body: parsed, text };
    },

    async devices() {
      const answer = await fleet.api('/v1/devices');
      if (answer.status !== 200) throw new Error(`GET /v1/devices answered ${answer.status}: ${answer.text}`);
      return answer.body as DeviceView[];
    },

    async drift() {
      const answer = await fleet.api('/v1/drift');
      if (answer.status !== 200) throw new Error(`GET /v1/drift answered ${answer.status}: ${answer.text}`);
      return (answer.body as { entries: DriftEntry[] }).entries;
    },

    async deviceDetail(name) {
      const answer = await fleet.api(`/v1/devices/${encodeURIComponent(name)}`);
      if (answer.status !== 200) throw new Error(`GET /v1/devices/${name} answered ${answer.status}: ${answer.text}`);
      return answer.body as DeviceDetail;
    },

    waitForDevices(what, done, o = {}) {
      return waitFor(what, () => fleet.devices().then(summarise), (ds) => done(ds), { timeoutMs: 60_000, intervalMs: 500, context: () => fleet.diagnostics(), ...o });
    },

    diagnostics() {
      return children.map((c) => `--- ${c.label} (pid ${c.pid}, ${c.running() ? 'running' : 'exited'}):\n${c.tail(25)}`).join('\n');
    },

    own(...names) {
      for (const name of names) devices.add(name);
    },

    async cleanup() {
      await Promise.all(children.map((c) => c.kill()));
      // Workloads outlive their agent on purpose; these are ours: by their marker or their directory.
      killPids(workloadPids([...devices]));
      killPids(findProcesses(({ cwd }) => cwd !== null && (cwd === dir || cwd.startsWith(`${dir}/`))));
      await removeAgentContainers([...devices]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return fleet;
}

/** Drops the hardware facts from device views, so a failure message shows what matters. */
function summarise(devices: DeviceView[]): DeviceView[] {
  return devices.map((d) => ({ ...d, facts: {} }));
}

// ---- Assertions on the stable machine-readable output (PRODUCT.md, "Machine-readable output") ----

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const STATES = ['pending', 'applying', 'healthy', 'failed', 'reverted', 'unknown'];

/** Checks one entry of `driftless get devices -o json` against the documented shape. */
export function assertDeviceShape(device: unknown): asserts device is DeviceView {
  const d = device as Record<string, unknown>;
  const where = `device ${JSON.stringify(d?.name)}`;
  assert.equal(typeof d.name, 'string', `${where}: name`);
  assert.ok(d.site === null || typeof d.site === 'string', `${where}: site`);
  assert.ok(d.labels !== null && typeof d.labels === 'object' && !Array.isArray(d.labels), `${where}: labels must be an object`);
  assert.equal(typeof d.online, 'boolean', `${where}: online`);
  assert.ok(typeof d.lastSeen === 'string' && ISO.test(d.lastSeen), `${where}: lastSeen must be ISO 8601, got ${JSON.stringify(d.lastSeen)}`);
  assert.ok(Array.isArray(d.components), `${where}: components must be an array`);
  for (const c of d.components as Record<string, unknown>[]) {
    for (const key of ['name', 'deployment', 'desiredVersion', 'version', 'state', 'reason']) assert.ok(key in c, `${where}: component lacks "${key}": ${JSON.stringify(c)}`);
    assert.ok(STATES.includes(c.state as string), `${where}: state ${JSON.stringify(c.state)} is not one of ${STATES.join(', ')}`);
  }
}

/** Checks one entry of `driftless drift -o json` against the documented shape. */
export function assertDriftShape(entry: unknown): asserts entry is DriftEntry {
  const e = entry as Record<string, unknown>;
  for (const key of ['device', 'site', 'component', 'desiredVersion', 'version', 'reason', 'since']) assert.ok(key in e, `drift entry lacks "${key}": ${JSON.stringify(e)}`);
  assert.equal(typeof e.detail, 'string', `drift entry detail must be a string: ${JSON.stringify(e)}`);
}

/** The one component of a device with this name, if reported. */
export function componentOf(device: DeviceView | undefined, name: string): DeviceView['components'][number] | undefined {
  return device?.components.find((c) => c.name === name);
}

/** A device-list condition: every named device reports `component`, and it passes `check`. */
export function everyDevice(names: readonly string[], component: string, check: (c: DeviceView['components'][number]) => boolean): (devices: DeviceView[]) => boolean {
  return (devices) =>
    names.every((n) => {
      const c = componentOf(devices.find((d) => d.name === n), component);
      return c !== undefined && check(c);
    });
}

/**
 * A Deployment of one native `sleep` component whose version shows in its environment
 * (APP_VERSION, see workloadVersions), on every selected device at once with no fleet-wide halt:
 * for tests about each device's own trust and commit-or-revert.
 */
export function sleeperManifest(deployment: string, tier: string, version: string): string {
  return `apiVersion: driftless/v1
kind: Deployment
metadata: { name: ${deployment} }
spec:
  selector: { matchLabels: { tier: ${tier} } }
  strategy: { waves: [{ percent: 100 }], maxFailurePercent: 100 }
  template:
    version: "${version}"
    components:
      - name: app
        command: ["/bin/busybox", "sleep", "100000"]
        env: { APP_VERSION: "${version}" }
        health: { running: { seconds: 1 } }
`;
}
