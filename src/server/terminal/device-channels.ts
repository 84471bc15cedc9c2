import { randomUUID } from 'node:crypto';
import type { RawData, WebSocket } from 'ws';
import {
  AgentToServer,
  chunksOf,
  decodeFrame,
  encodeFrame,
  fromBase64,
  toBase64,
  type ChannelHello,
  type ServerToAgent,
  type SessionErrorCode,
} from '../../protocol/channel.ts';

/**
 * The server's side of every agent's channel: one WebSocket per connected device, sessions
 * multiplexed on it by id. A device that is not connected here cannot be reached for a terminal
 * or exec; it still gets its desired state by polling, so a lost channel loses nothing.
 */

/** What the relay hears about one session, in order: opened (or error), output…, then exit or error. */
export type SessionEvents = {
  opened(): void;
  output(data: Buffer): void;
  exit(exitCode: number, timedOut: boolean): void;
  /** The agent refused or failed the session, or the channel went away (`disconnected`). */
  error(code: SessionErrorCode | 'disconnected', message: string): void;
};

export type DeviceSession = {
  readonly id: string;
  input(data: Buffer): void;
  resize(cols: number, rows: number): void;
  /** Ends the session on the device (hangs up the shell, kills the command); no further events. */
  close(): void;
};

export type OpenRequest =
  | { type: 'open-terminal'; cols: number; rows: number }
  | { type: 'open-exec'; command: string[]; component?: string; timeoutSeconds: number };

export type ChannelInfo = Omit<ChannelHello, 'type'>;

export type DeviceChannels = {
  /** Takes over a device's newly opened channel socket; an older channel of the same device is closed. */
  attach(device: string, socket: WebSocket): void;
  /** The connected device's own account of itself (after its hello), or null when it has no channel. */
  info(device: string): ChannelInfo | null;
  /** Starts a session on a connected device; throws when it has no channel. */
  open(device: string, request: OpenRequest, events: SessionEvents): DeviceSession;
  /** Tells connected devices to pull their desired state now. */
  hint(devices: Iterable<string>): void;
  /** Closes a device's channel at once (a revoked device, say); its sessions end with `reason`. */
  disconnect(device: string, reason: string): void;
  connectedCount(): number;
  /** Closes every channel (server shutdown). */
  closeAll(): void;
};

export type DeviceChannelsOptions = {
  /** How often the server pings each channel; a channel that missed one pong is dropped. */
  pingMs?: number;
  /** How long a new channel has to say hello. */
  helloMs?: number;
  log?: (message: string) => void;
};

/** Close codes the agent reads: 4001 replaced by a newer channel, 4003 refused (revoked), 4000 bad frame. */
export const CLOSE_CODES = { badFrame: 4000, replaced: 4001, refused: 4003, shutdown: 1001 } as const;

type Channel = {
  socket: WebSocket;
  info: ChannelInfo | null;
  sessions: Map<string, SessionEvents>;
  alive: boolean;
  timers: NodeJS.Timeout[];
};

export function createDeviceChannels(opts: DeviceChannelsOptions = {}): DeviceChannels {
  const pingMs = opts.pingMs ?? 30_000;
  const helloMs = opts.helloMs ?? 10_000;
  const log = opts.log ?? (() => undefined);
  const channels = new Map<string, Channel>();

  const send = (channel: Channel, frame: ServerToAgent) => {
    if (channel.socket.readyState === channel.socket.OPEN) channel.socket.send(encodeFrame(frame));
  };

  function drop(device: string, channel: Channel, code: number, reason: string): void {
    for (const timer of channel.timers) clearInterval(timer);
    if (channels.get(device) === channel) channels.delete(device);
    const sessions = [...channel.sessions.values()];
    channel.sessions.clear();
    for (const events of sessions) events.error('disconnected', reason);
    if (channel.socket.readyState === channel.socket.OPEN || channel.socket.readyState === channel.socket.CONNECTING) {
      channel.socket.close(code, reason.slice(0, 120));
    }
  }

  function received(device: string, channel: Channel, raw: RawData, isBinary: boolean): void {
    let frame: AgentToServer;
    try {
      frame = decodeFrame(AgentToServer, raw, isBinary);
    } catch (error) {
      log(`channel of ${device}: ${(error as Error).message}; closing it`);
      drop(device, channel, CLOSE_CODES.badFrame, (error as Error).message);
      return;
    }
    if (frame.type === 'hello') {
      channel.info = { agentVersion: frame.agentVersion, remoteShell: frame.remoteShell };
      return;
    }
    const events = channel.sessions.get(frame.session);
    // A frame of a session already closed here (the operator left first) is late, not wrong.
    if (!events) return;
    switch (frame.type) {
      case 'opened':
        events.opened();
        return;
      case 'output':
        events.output(fromBase64(frame.data));
        return;
      case 'exit':
        channel.sessions.delete(frame.session);
        events.exit(frame.exitCode, frame.timedOut ?? false);
        return;
      case 'error':
        channel.sessions.delete(frame.session);
        events.error(frame.code, frame.message);
        return;
    }
  }

  return {
    attach(device, socket) {
      const previous = channels.get(device);
      if (previous) drop(device, previous, CLOSE_CODES.replaced, 'a newer channel of this device connected');
      const channel: Channel = { socket, info: null, sessions: new Map(), alive: true, timers: [] };
      channels.set(device, channel);
      const helloTimer = setTimeout(() => {
        if (!channel.info) drop(device, channel, CLOSE_CODES.badFrame, 'no hello');
      }, helloMs);
      helloTimer.unref();
      const pingTimer = setInterval(() => {
        if (!channel.alive) {
          log(`channel of ${device}: no pong; dropping it`);
          drop(device, channel, CLOSE_CODES.shutdown, 'no pong');
          socket.terminate();
          return;
        }
        channel.alive = false;
        socket.ping();
      }, pingMs);
      pingTimer.unref();
      channel.timers.push(helloTimer, pingTimer);
      socket.on('pong', () => (channel.alive = true));
      socket.on('message', (raw, isBinary) => received(device, channel, raw, isBinary));
      socket.on('close', () => drop(device, channel, CLOSE_CODES.shutdown, `device ${device} disconnected`));
      socket.on('error', (error) => log(`channel of ${device}: ${error.message}`));
    },

    info(device) {
      return channels.get(device)?.info ?? null;
    },

    open(device, request, events) {
      const channel = channels.get(device);
      if (!channel?.info) throw new Error(`device ${device} has no channel open`);
      const id = randomUUID();
      channel.sessions.set(id, events);
      send(channel, { ...request, session: id });
      return {
        id,
        input(data) {
          if (!channel.sessions.has(id)) return;
          for (const chunk of chunksOf(data)) send(channel, { type: 'input', session: id, data: toBase64(chunk) });
        },
        resize(cols, rows) {
          if (channel.sessions.has(id)) send(channel, { type: 'resize', session: id, cols, rows });
        },
        close() {
          if (channel.sessions.delete(id)) send(channel, { type: 'close', session: id });
        },
      };
    },

    hint(devices) {
      for (const device of devices) {
        const channel = channels.get(device);
        if (channel?.info) send(channel, { type: 'hint', what: 'desired-state' });
      }
    },

    disconnect(device, reason) {
      const channel = channels.get(device);
      if (channel) drop(device, channel, CLOSE_CODES.refused, reason);
    },

    connectedCount: () => channels.size,

    closeAll() {
      for (const [device, channel] of [...channels]) drop(device, channel, CLOSE_CODES.shutdown, 'server shutting down');
    },
  };
}
