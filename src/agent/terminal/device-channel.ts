import { WebSocket } from 'ws';
import { decodeFrame, encodeFrame, ServerToAgent, type AgentToServer } from '../../protocol/channel.ts';
import { DriverError, type RuntimeDriver, type RuntimeKind } from '../drivers/driver.ts';
import type { ObservedInstance } from '../plan/plan.ts';
import { backoffDelayMs, DEFAULT_BACKOFF, type Backoff } from '../sync/backoff.ts';
import { runOnHost } from './host-exec.ts';
import { spawnPtyTerminal, type SpawnTerminal } from './pty-terminal.ts';
import { createSessionHost, SessionRefusal } from './session-host.ts';

/**
 * The agent's one WebSocket to the server (`/v1/device/channel`). It carries hints ("desired
 * state changed, pull now") and remote terminal and exec sessions; it never carries desired state,
 * so losing it loses nothing. It reopens after any loss with jittered back-off. Remote sessions go
 * to the host's PTY and processes, not through the container engine: a device whose workloads or
 * engine are broken is still reachable.
 */

/** What the agent gives its channel (create-agent.ts builds it). */
export type AgentLink = {
  serverUrl: string;
  /** A device session token; `renew` asks for a new one (the server refused the last). */
  sessionToken(renew: boolean): Promise<string>;
  /** Pull desired state now instead of at the next poll. */
  pullNow(): void;
  /** What the last reconcile saw running, to find a component's container for exec. */
  components(): readonly ObservedInstance[];
  drivers: Partial<Record<RuntimeKind, RuntimeDriver>>;
};

export type ChannelHandle = { stop(): Promise<void> };
/** How the agent starts its channel (AgentDeps.channel); the simulator passes none. */
export type ChannelFactory = (link: AgentLink) => ChannelHandle;

export type DeviceChannelOptions = {
  /** Whether remote shells and exec are allowed, read at each session (a local file can change it). */
  remoteShell: () => boolean;
  agentVersion: string;
  spawnTerminal?: SpawnTerminal;
  backoff?: Backoff;
  random?: () => number;
  log?: (message: string) => void;
  /** Without a ping from the server for this long, the channel is presumed dead and reopened. */
  silenceMs?: number;
  /** A CA certificate (PEM) to trust for a wss:// server, as `--ca` gives the agent's other calls. */
  ca?: string;
};

/** The server's close codes (server/terminal/device-channels.ts): 4003 means this device is refused. */
const REFUSED = 4003;

export function deviceChannel(opts: DeviceChannelOptions): ChannelFactory {
  return (link) => startDeviceChannel(link, opts);
}

export function startDeviceChannel(link: AgentLink, opts: DeviceChannelOptions): ChannelHandle {
  const log = opts.log ?? (() => undefined);
  const backoff = opts.backoff ?? DEFAULT_BACKOFF;
  const random = opts.random ?? Math.random;
  const silenceMs = opts.silenceMs ?? 100_000;
  const url = `${link.serverUrl.replace(/\/+$/, '').replace(/^http/, 'ws')}/v1/device/channel`;
  let stopped = false;
  let socket: WebSocket | null = null;
  let wake: (() => void) | null = null;

  const send = (frame: AgentToServer) => {
    if (socket?.readyState === WebSocket.OPEN) socket.send(encodeFrame(frame));
  };
  const host = createSessionHost({
    send,
    remoteShell: opts.remoteShell,
    spawnTerminal: opts.spawnTerminal ?? spawnPtyTerminal,
    runOnHost,
    execInComponent: (component, command, signal) => execInComponent(link, component, command, signal),
    buffered: () => socket?.bufferedAmount ?? 0,
    log,
  });

  /** One connection, from open to close; resolves how it ended. */
  function connect(token: string): Promise<{ opened: boolean; status?: number; code?: number; reason?: string }> {
    return new Promise((resolve) => {
      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, handshakeTimeout: 15_000, maxPayload: 256 * 1024, ...(opts.ca ? { ca: opts.ca } : {}) });
      socket = ws;
      let opened = false;
      let silence: NodeJS.Timeout | null = null;
      const heard = () => {
        if (silence) clearTimeout(silence);
        silence = setTimeout(() => {
          log('channel: the server went silent; reopening');
          ws.terminate();
        }, silenceMs);
      };
      ws.on('unexpected-response', (_request, response) => {
        resolve({ opened: false, status: response.statusCode ?? 0 });
        response.resume();
        ws.terminate();
      });
      ws.on('open', () => {
        opened = true;
        heard();
        send({ type: 'hello', agentVersion: opts.agentVersion, remoteShell: opts.remoteShell() });
        // Hints sent while the channel was down are lost: pull once to catch up.
        link.pullNow();
      });
      ws.on('ping', heard);
      ws.on('message', (raw, isBinary) => {
        heard();
        let frame: ServerToAgent;
        try {
          frame = decodeFrame(ServerToAgent, raw, isBinary);
        } catch (error) {
          log(`channel: ${(error as Error).message}; closing it`);
          ws.close(4000, 'bad frame');
          return;
        }
        if (frame.type === 'hint') link.pullNow();
        else host.handle(frame);
      });
      ws.on('error', (error) => {
        if (!opened) log(`channel: ${error.message}`);
      });
      ws.on('close', (code, reason) => {
        if (silence) clearTimeout(silence);
        host.closeAll();
        if (socket === ws) socket = null;
        resolve({ opened, code, reason: reason.toString() });
      });
    });
  }

  const done = (async () => {
    let failures = 0;
    let renew = false;
    while (!stopped) {
      let outcome: Awaited<ReturnType<typeof connect>> | null = null;
      try {
        outcome = await connect(await link.sessionToken(renew));
        renew = outcome.status === 401;
        if (outcome.opened) {
          log(`channel closed (${outcome.code}${outcome.reason ? `: ${outcome.reason}` : ''})`);
          failures = outcome.code === REFUSED ? failures + 1 : 0;
        } else {
          failures++;
          log(`channel refused by the server (HTTP ${outcome.status})`);
        }
      } catch (error) {
        failures++;
        log(`channel: ${(error as Error).message}`);
      }
      if (stopped) break;
      const delay = backoffDelayMs(backoff, Math.max(1, failures), random, null);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = null;
    }
  })();

  return {
    async stop() {
      stopped = true;
      wake?.();
      host.closeAll();
      socket?.close(1001, 'agent stopping');
      const current = socket;
      // A peer that does not answer the close is cut after a moment.
      const cut = setTimeout(() => current?.terminate(), 2_000);
      // Stopping never waits long on a server that does not answer (a session token being fetched, say).
      await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 3_000).unref())]);
      clearTimeout(cut);
    },
  };
}

async function execInComponent(link: AgentLink, component: string, command: string[], signal: AbortSignal): Promise<{ exitCode: number; output: string }> {
  const instance = link.components().find((i) => i.component === component);
  if (!instance) {
    // Not seen running: perhaps because its runtime is down, which is the answer the operator needs.
    for (const driver of Object.values(link.drivers)) {
      try {
        await driver?.list();
      } catch (error) {
        if (error instanceof DriverError && error.reason === 'runtime-unavailable') {
          throw new SessionRefusal('unavailable', `component "${component}" cannot be reached: ${error.message}; exec on the host (without --component) does not need it`);
        }
      }
    }
    throw new SessionRefusal('not-found', `no component "${component}" runs on this device`);
  }
  const driver = link.drivers[instance.runtime];
  if (!driver?.exec) throw new SessionRefusal('failed', `component "${component}" (${instance.runtime}) does not support exec; run the command on the host instead`);
  try {
    return await driver.exec(instance.key, command, signal);
  } catch (error) {
    if (error instanceof DriverError && error.reason === 'runtime-unavailable') throw new SessionRefusal('unavailable', `${error.message}; exec on the host (without --component) does not need it`);
    if (error instanceof DriverError) throw new SessionRefusal('failed', error.message);
    throw error;
  }
}
