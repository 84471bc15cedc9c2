import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import type { ContainerCreateOptions, ContainerInfo, ContainerInspectInfo } from 'dockerode';
import { DriverError } from '../driver.ts';
import { demuxLogStream, linesAfter, sinceOf } from './container-logs.ts';
import type { DriverFailure, Instance, InstanceSpec, RuntimeDriver } from '../driver.ts';

/**
 * Runs `image:` components as containers through the Docker Engine API, which Docker and Podman
 * both serve. The agent owns only the containers it labelled with its own id: everything else on
 * the engine (other agents sharing it, containers a person made by hand) is invisible here.
 */

export const LABELS = {
  agent: 'io.driftless.agent',
  key: 'io.driftless.key',
  specHash: 'io.driftless.spec-hash',
  deployment: 'io.driftless.deployment',
  component: 'io.driftless.component',
  version: 'io.driftless.version',
} as const;

export type ContainerDriverOptions = {
  agentId: string;
  /** Unix socket of the engine; ignored when dockerHost is given. */
  socketPath?: string;
  /** A DOCKER_HOST value: unix:///path, tcp://host:port, http(s)://host:port. */
  dockerHost?: string;
  log?: (msg: string) => void;
  /** Seconds a container gets to stop before it is killed, on remove(). */
  stopTimeoutSeconds?: number;
  /** Bound on each short engine call, so a hung engine cannot hang the agent's loop. */
  requestTimeoutMs?: number;
};

const PODMAN_SOCKET = '/run/podman/podman.sock';
const DOCKER_SOCKET = '/var/run/docker.sock';
/** exec output kept for the health report; a chatty command must not fill the agent's memory. */
const MAX_EXEC_OUTPUT = 64 * 1024;

export function createContainerDriver(opts: ContainerDriverOptions): RuntimeDriver {
  const log = opts.log ?? (() => {});
  const stopTimeout = opts.stopTimeoutSeconds ?? 5;
  const connection = engineConnection(opts);
  // Two clients on one engine: short calls get a socket timeout; pulls and execs stream for as
  // long as they need (an idle exec socket is normal while the command runs).
  const docker = new Docker({ ...connection, timeout: opts.requestTimeoutMs ?? 30_000 });
  const streaming = new Docker(connection);
  const agentLabel = `${LABELS.agent}=${opts.agentId}`;
  let closed = false;

  const nameOf = (key: string): string => containerName(opts.agentId, key);

  function assertOpen(): void {
    if (closed) throw new DriverError('runtime-unavailable', 'container driver is closed');
  }

  /**
   * The container of this key, or null if there is none. A container of that name that this
   * agent did not label is not ours: `foreign: 'error'` reports the conflict (create cannot
   * proceed), `foreign: 'absent'` treats it as missing (remove must never touch it).
   */
  async function inspectOwned(key: string, foreign: 'error' | 'absent' = 'error'): Promise<ContainerInspectInfo | null> {
    let info: ContainerInspectInfo;
    try {
      info = await docker.getContainer(nameOf(key)).inspect();
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw engineError(err, 'start-failed', `inspect container ${nameOf(key)}`);
    }
    if (info.Config.Labels?.[LABELS.agent] !== opts.agentId) {
      if (foreign === 'absent') {
        log(`leaving container ${nameOf(key)} alone: it was not created by agent ${opts.agentId}`);
        return null;
      }
      throw new DriverError(
        'start-failed',
        `a container named ${nameOf(key)} exists but was not created by agent ${opts.agentId}; rename or remove it`,
      );
    }
    return info;
  }

  async function ensureImage(image: string): Promise<void> {
    try {
      await docker.getImage(image).inspect();
      return;
    } catch (err) {
      if (statusOf(err) !== 404) throw engineError(err, 'download-failed', `inspect image ${image}`);
    }
    log(`pulling ${image}`);
    try {
      const stream = await streaming.pull(image);
      const events = await new Promise<PullEvent[]>((resolve, reject) => {
        streaming.modem.followProgress(stream, (err: Error | null, output: PullEvent[]) =>
          err ? reject(err) : resolve(output),
        );
      });
      // The engine reports a failed pull inside a 200 response, as a progress event.
      const failure = events.find((e) => e.error || e.errorDetail);
      if (failure) throw new Error(failure.errorDetail?.message ?? failure.error ?? 'pull failed');
    } catch (err) {
      throw engineError(err, 'download-failed', `pull ${image}`);
    }
    // Podman can answer a pull of an unknown name with an empty success; trust only the image.
    try {
      await docker.getImage(image).inspect();
    } catch (err) {
      throw engineError(err, 'download-failed', `image ${image} is not present after pull`);
    }
  }

  async function removeContainer(name: string): Promise<void> {
    const container = docker.getContainer(name);
    try {
      await container.stop({ t: stopTimeout });
    } catch (err) {
      // 304: already stopped; 404: already gone. Anything else, force the removal below.
      const status = statusOf(err);
      if (status === undefined) throw engineError(err, 'runtime-unavailable', `stop ${name}`);
    }
    try {
      // v: false — volumes hold the user's data; they outlive every version of the container.
      await container.remove({ force: true, v: false });
    } catch (err) {
      if (statusOf(err) === 404) return;
      throw engineError(err, 'runtime-unavailable', `remove ${name}`);
    }
  }

  return {
    kind: 'container',

    async list(): Promise<Instance[]> {
      assertOpen();
      let containers: ContainerInfo[];
      try {
        containers = await docker.listContainers({ all: true, filters: { label: [agentLabel] } });
      } catch (err) {
        throw engineError(err, 'runtime-unavailable', 'list containers');
      }
      // Both the label and the name must be ours: an image can carry any label, and a container
      // someone started from it by hand must still not be mistaken for the agent's.
      const owned = containers.filter((c) => {
        const key = c.Labels[LABELS.key];
        return key !== undefined && c.Names.some((n) => n.replace(/^\//, '') === nameOf(key));
      });
      const instances = await Promise.all(owned.map((c) => describe(c)));
      return instances.filter((i): i is Instance => i !== null);
    },

    async prepare(spec: InstanceSpec): Promise<void> {
      assertOpen();
      if (!spec.component.image) throw new DriverError('start-failed', `component ${spec.key} has no image`);
      await ensureImage(spec.component.image);
    },

    async create(spec: InstanceSpec): Promise<void> {
      assertOpen();
      const { component } = spec;
      const name = nameOf(spec.key);
      if (!component.image) throw new DriverError('start-failed', `component ${spec.key} has no image`);

      const existing = await inspectOwned(spec.key);
      if (existing) {
        if (existing.Config.Labels?.[LABELS.specHash] === spec.specHash && existing.State.Running) return;
        // A different spec, or a crash between create and start last time: replace, never duplicate.
        log(`replacing container ${name}`);
        await removeContainer(name);
      }

      await ensureImage(component.image);

      const ports = parsePorts(component.ports ?? []);
      const options: ContainerCreateOptions = {
        name,
        Image: component.image,
        Labels: {
          [LABELS.agent]: opts.agentId,
          [LABELS.key]: spec.key,
          [LABELS.specHash]: spec.specHash,
          [LABELS.deployment]: component.deployment,
          [LABELS.component]: component.name,
          [LABELS.version]: component.version,
        },
        Env: Object.entries(component.env ?? {}).map(([k, v]) => `${k}=${v}`),
        ExposedPorts: Object.fromEntries(ports.map((p) => [p.containerPort, {}])),
        HostConfig: {
          PortBindings: portBindings(ports),
          // A bind whose source is a name, not a path, is a named volume; the engine creates it.
          Binds: (component.volumes ?? []).map(parseVolume),
          // No restart policy: the agent restarts stopped containers itself, so it sees and
          // reports every local stop instead of the engine hiding it.
          RestartPolicy: { Name: 'no' },
        },
      };
      if (component.command) options.Cmd = component.command;
      if (component.workingDir) options.WorkingDir = component.workingDir;

      try {
        await docker.createContainer(options);
      } catch (err) {
        throw engineError(err, 'start-failed', `create container ${name}`);
      }
      try {
        await docker.getContainer(name).start();
      } catch (err) {
        // The stopped container stays, so list() shows it; the next create() replaces it.
        throw engineError(err, 'start-failed', `start container ${name}`);
      }
      log(`started container ${name} (${component.image})`);
    },

    async start(key: string): Promise<void> {
      assertOpen();
      const info = await inspectOwned(key);
      if (!info) throw new DriverError('start-failed', `no container ${nameOf(key)} to start`);
      try {
        await docker.getContainer(info.Id).start();
      } catch (err) {
        if (statusOf(err) === 304) return; // already running
        throw engineError(err, 'start-failed', `start container ${nameOf(key)}`);
      }
    },

    async remove(key: string): Promise<void> {
      assertOpen();
      const info = await inspectOwned(key, 'absent');
      if (!info) return;
      await removeContainer(info.Id);
      log(`removed container ${nameOf(key)}`);
    },

    async exec(key: string, command: string[], signal: AbortSignal): Promise<{ exitCode: number; output: string }> {
      assertOpen();
      signal.throwIfAborted();
      const info = await inspectOwned(key);
      if (!info) throw new DriverError('start-failed', `no container ${nameOf(key)} to exec in`);
      try {
        const exec = await streaming.getContainer(info.Id).exec({
          Cmd: command,
          AttachStdout: true,
          AttachStderr: true,
        });
        const stream = await exec.start({ hijack: true, stdin: false });
        const output = await collectOutput(streaming, stream, signal);
        return { exitCode: await exitCodeOf(exec, signal), output };
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        throw engineError(err, 'start-failed', `exec in ${nameOf(key)}`);
      }
    },

    async readLogs(key, cursor, maxBytes, maxLines = Number.POSITIVE_INFINITY) {
      assertOpen();
      const info = await inspectOwned(key, 'absent');
      if (!info) return { lines: [], cursor: cursor ?? {} };
      let data: Buffer;
      try {
        data = await docker.getContainer(info.Id).logs({ stdout: true, stderr: true, timestamps: true, follow: false, since: sinceOf(info.Id, cursor) });
      } catch (err) {
        throw engineError(err, 'runtime-unavailable', `read the output of ${nameOf(key)}`);
      }
      // With a TTY there are no frames, and lines end in \r\n.
      const text = info.Config.Tty ? data.toString('utf8').replaceAll('\r\n', '\n') : demuxLogStream(data);
      return linesAfter(info.Id, text, cursor, maxBytes, maxLines);
    },

    async close(): Promise<void> {
      // dockerode holds no open connection between calls; closing only refuses further use.
      closed = true;
    },
  };

  async function describe(c: ContainerInfo): Promise<Instance | null> {
    const labels = c.Labels;
    const base = {
      key: labels[LABELS.key] ?? '',
      specHash: labels[LABELS.specHash] ?? '',
      deployment: labels[LABELS.deployment] ?? '',
      component: labels[LABELS.component] ?? '',
      version: labels[LABELS.version] ?? '',
    };
    // Never started: the list entry says all there is, no inspect needed.
    if (c.State === 'created') return { ...base, running: false, exitCode: null, startedAt: null, ports: {} };
    let info: ContainerInspectInfo;
    try {
      info = await docker.getContainer(c.Id).inspect();
    } catch (err) {
      if (statusOf(err) === 404) return null; // removed since the list
      throw engineError(err, 'runtime-unavailable', `inspect container ${c.Id}`);
    }
    const running = info.State.Running;
    return {
      ...base,
      running,
      exitCode: running ? null : info.State.ExitCode,
      startedAt: validTime(info.State.StartedAt),
      ports: running ? publishedPorts(info.NetworkSettings.Ports) : {},
    };
  }
}

type PullEvent = { status?: string; error?: string; errorDetail?: { message?: string } };

type Connection = { socketPath: string } | { host: string; port: number; protocol: 'http' | 'https' };

/** Where the engine is: an explicit DOCKER_HOST, else Podman's socket if present, else Docker's. */
export function engineConnection(opts: { socketPath?: string; dockerHost?: string }): Connection {
  if (opts.dockerHost) {
    if (opts.dockerHost.startsWith('unix://')) return { socketPath: opts.dockerHost.slice('unix://'.length) };
    const url = new URL(opts.dockerHost.includes('://') ? opts.dockerHost : `tcp://${opts.dockerHost}`);
    const protocol = url.protocol === 'https:' ? 'https' : 'http';
    if (!['tcp:', 'http:', 'https:'].includes(url.protocol)) {
      throw new DriverError('runtime-unavailable', `unsupported DOCKER_HOST ${opts.dockerHost}: use unix:// or tcp://`);
    }
    return { host: url.hostname, port: Number(url.port || (protocol === 'https' ? 2376 : 2375)), protocol };
  }
  if (opts.socketPath) return { socketPath: opts.socketPath };
  return { socketPath: existsSync(PODMAN_SOCKET) ? PODMAN_SOCKET : DOCKER_SOCKET };
}

/**
 * `driftless-<agentId>-<key>`: deterministic, so a create interrupted by a crash is found and
 * finished rather than duplicated. Characters the engine refuses become "_", and then a short
 * hash of the original keeps two different keys from sharing one name.
 */
export function containerName(agentId: string, key: string): string {
  const raw = `driftless-${agentId}-${key}`;
  const safe = raw.replace(/[^a-zA-Z0-9_.-]/g, '_');
  if (safe === raw) return raw;
  return `${safe}-${createHash('sha256').update(raw).digest('hex').slice(0, 8)}`;
}

type PortSpec = { hostIp: string; hostPort: string; containerPort: string };

/** "8080", "80:8080", "127.0.0.1:80:8080", each with an optional "/tcp" or "/udp". */
export function parsePorts(mappings: string[]): PortSpec[] {
  return mappings.map((mapping) => {
    const [addr = '', proto = 'tcp'] = mapping.split('/');
    const parts = addr.split(':');
    const container = parts.pop() ?? '';
    const host = parts.pop() ?? '';
    const hostIp = parts.join(':');
    if (!/^\d+$/.test(container) || (host !== '' && !/^\d+$/.test(host)) || !['tcp', 'udp'].includes(proto)) {
      throw new DriverError('start-failed', `invalid port mapping "${mapping}": use host:container or container`);
    }
    // An empty host port asks the engine for an ephemeral one; list() reports which it chose.
    return { hostIp, hostPort: host, containerPort: `${container}/${proto}` };
  });
}

function portBindings(ports: PortSpec[]): Record<string, { HostIp: string; HostPort: string }[]> {
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of ports) (bindings[p.containerPort] ??= []).push({ HostIp: p.hostIp, HostPort: p.hostPort });
  return bindings;
}

/** "data:/var/lib/app[:ro]" as a bind of the named volume "data". */
export function parseVolume(mount: string): string {
  const match = /^([A-Za-z0-9][A-Za-z0-9_.-]*):(\/[^:]*)(?::(ro|rw))?$/.exec(mount);
  if (!match) throw new DriverError('start-failed', `invalid volume "${mount}": use name:/path[:ro]`);
  const [, name, path, mode] = match;
  return mode ? `${name}:${path}:${mode}` : `${name}:${path}`;
}

/** Container port -> host port; TCP wins when one port number is published for both protocols. */
function publishedPorts(ports: ContainerInspectInfo['NetworkSettings']['Ports'] | null | undefined): Record<number, number> {
  const result: Record<number, number> = {};
  const entries = Object.entries(ports ?? {}).sort(([a], [b]) => (a.endsWith('/tcp') ? 1 : 0) - (b.endsWith('/tcp') ? 1 : 0));
  for (const [containerPort, bindings] of entries) {
    const hostPort = Number(bindings?.[0]?.HostPort);
    if (hostPort > 0) result[Number.parseInt(containerPort, 10)] = hostPort;
  }
  return result;
}

/** Engines report "0001-01-01T00:00:00Z" for a container that never started. */
function validTime(value: string | undefined): string | null {
  if (!value || value.startsWith('0001-')) return null;
  const time = new Date(value);
  return Number.isNaN(time.getTime()) ? null : time.toISOString();
}

async function collectOutput(docker: Docker, stream: NodeJS.ReadableStream, signal: AbortSignal): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  const sink = new PassThrough();
  sink.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    size += chunk.length;
    // Keep the tail: the end of a failing command's output says why it failed.
    while (size > MAX_EXEC_OUTPUT && chunks.length > 1) size -= chunks.shift()!.length;
  });
  // Without a TTY the engine multiplexes stdout and stderr into one framed stream.
  docker.modem.demuxStream(stream, sink, sink);
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const done = (): void => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    };
    stream.on('end', done);
    stream.on('close', done);
    stream.on('error', (err: Error) => {
      signal.removeEventListener('abort', onAbort);
      reject(err);
    });
  });
  return Buffer.concat(chunks).toString('utf8').slice(-MAX_EXEC_OUTPUT);
}

/** The exec's exit code; the engine may record it a moment after the output stream ends. */
async function exitCodeOf(exec: Docker.Exec, signal: AbortSignal): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const info = await exec.inspect();
    if (!info.Running && info.ExitCode !== null) return info.ExitCode;
    if (attempt >= 50) throw new Error('exec did not report an exit code');
    signal.throwIfAborted();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function statusOf(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND']);

/**
 * An engine failure as a DriverError: no engine at all is always runtime-unavailable; otherwise
 * the caller says what failing here means, and the engine's own message is kept for the operator.
 */
function engineError(err: unknown, reason: DriverFailure, doing: string): DriverError {
  if (err instanceof DriverError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = engineMessage(err);
  if (typeof code === 'string' && UNREACHABLE.has(code)) {
    return new DriverError('runtime-unavailable', `container engine unreachable (${doing}): ${message}`);
  }
  if (statusOf(err) === undefined && /timeout|socket hang up/i.test(message)) {
    return new DriverError('runtime-unavailable', `container engine did not answer (${doing}): ${message}`);
  }
  return new DriverError(reason, `${doing}: ${message}`);
}

/** dockerode puts the engine's JSON `{"message": …}` in `json`; its own message adds a prefix. */
function engineMessage(err: unknown): string {
  const json = (err as { json?: unknown } | null)?.json;
  if (json && typeof json === 'object' && 'message' in json && typeof json.message === 'string') return json.message.trim();
  if (typeof json === 'string' && json.trim()) return json.trim();
  return err instanceof Error ? err.message : String(err);
}
