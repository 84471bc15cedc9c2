import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

/**
 * A TCP relay between an agent and the server that adds what this kernel cannot (it has no
 * `netem`): a fixed latency on every chunk in each direction, a pause that holds one direction's
 * data back (a request that reaches the server while its answer does not come back), and resets.
 * It knows nothing about HTTP. Chunks are delivered in order; a slow reader slows the sender down
 * (the relay stops reading once it holds `maxQueuedBytes` for one direction), so memory stays bounded.
 */

/** `up`: client → target (the agent's requests); `down`: target → client (the server's answers). */
export type Direction = 'up' | 'down';

export type TcpProxyOptions = {
  target: { host: string; port: number };
  /** Where to listen; defaults to an ephemeral port on the target's host. */
  listen?: { host?: string; port?: number };
  /** Added to every chunk in each direction. */
  latencyMs?: number;
  /** Per connection and direction, how much the relay holds before it stops reading. */
  maxQueuedBytes?: number;
};

export type TcpProxyStats = {
  accepted: number;
  open: number;
  bytes: Record<Direction, number>;
  /** The most one direction of one connection ever held: bounded by backpressure. */
  maxQueued: number;
};

export type TcpProxy = {
  host: string;
  port: number;
  /** `http://host:port`, for an agent's `--server`. */
  url: string;
  setLatency(ms: number): void;
  /** Holds data in one direction (or both): read, queued, delivered in order on `resume()`. */
  pause(direction?: Direction | 'both'): void;
  resume(direction?: Direction | 'both'): void;
  /** Resets every open connection (RST to both sides). */
  reset(): void;
  /**
   * Calls `fn` with each chunk as it is forwarded (a test can pause the answers the moment a
   * request goes through); returns a function that removes it.
   */
  tap(fn: Tap): () => void;
  stats(): TcpProxyStats;
  close(): Promise<void>;
};

type Relay = { pump(): void; queued(): number };

/** `connection` numbers the relayed connections from 1, so a tap can tell their streams apart. */
export type Tap = (direction: Direction, chunk: Buffer, connection: number) => void;

export async function startTcpProxy(opts: TcpProxyOptions): Promise<TcpProxy> {
  let latencyMs = opts.latencyMs ?? 0;
  const maxQueuedBytes = opts.maxQueuedBytes ?? 1024 * 1024;
  const paused: Record<Direction, boolean> = { up: false, down: false };
  const stats: TcpProxyStats = { accepted: 0, open: 0, bytes: { up: 0, down: 0 }, maxQueued: 0 };
  const connections = new Set<{ client: Socket; upstream: Socket; relays: Relay[] }>();
  const taps = new Set<Tap>();

  /** Moves bytes from `from` to `to`, each chunk no earlier than `latencyMs` after it was read. */
  function relay(from: Socket, to: Socket, direction: Direction, connection: number): Relay {
    const queue: { chunk: Buffer; due: number }[] = [];
    let queued = 0;
    let ended = false;
    let finished = false;
    let timer: NodeJS.Timeout | null = null;
    let waitingForDrain = false;
    let throttled = false;

    function pump(): void {
      if (timer !== null || waitingForDrain || finished || to.destroyed) return;
      while (queue.length > 0) {
        if (paused[direction]) return; // resume() pumps again
        const head = queue[0]!;
        const wait = head.due - Date.now();
        if (wait > 0) {
          timer = setTimeout(() => {
            timer = null;
            pump();
          }, wait);
          return;
        }
        queue.shift();
        queued -= head.chunk.length;
        stats.bytes[direction] += head.chunk.length;
        for (const fn of taps) fn(direction, head.chunk, connection);
        const accepted = to.write(head.chunk);
        if (throttled && queued <= maxQueuedBytes / 2) {
          throttled = false;
          from.resume();
        }
        if (!accepted) {
          waitingForDrain = true;
          to.once('drain', () => {
            waitingForDrain = false;
            pump();
          });
          return;
        }
      }
      if (ended) {
        finished = true;
        to.end();
      }
    }

    from.on('data', (chunk: Buffer) => {
      queue.push({ chunk, due: Date.now() + latencyMs });
      queued += chunk.length;
      stats.maxQueued = Math.max(stats.maxQueued, queued);
      if (queued >= maxQueuedBytes && !throttled) {
        throttled = true;
        from.pause();
      }
      pump();
    });
    from.on('end', () => {
      ended = true;
      pump();
    });
    // Chunks still queued when the reader goes away have nowhere to go.
    to.on('close', () => {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      queue.length = 0;
      queued = 0;
    });
    return { pump, queued: () => queued };
  }

  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    const id = ++stats.accepted;
    stats.open++;
    const upstream = connect({ host: opts.target.host, port: opts.target.port, allowHalfOpen: true });
    const connection = { client, upstream, relays: [] as Relay[] };
    connections.add(connection);
    let gone = false;
    // A failed side (reset, refused, timed out) closes with an error; the other side is reset then.
    client.on('error', () => {});
    upstream.on('error', () => {});
    const closed = () => {
      if (gone || !client.destroyed || !upstream.destroyed) return;
      gone = true;
      stats.open--;
      connections.delete(connection);
    };
    client.on('close', (hadError) => {
      if (hadError && !upstream.destroyed) upstream.resetAndDestroy();
      closed();
    });
    upstream.on('close', (hadError) => {
      if (hadError && !client.destroyed) client.resetAndDestroy();
      closed();
    });
    connection.relays.push(relay(client, upstream, 'up', id), relay(upstream, client, 'down', id));
    client.resume();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.listen?.port ?? 0, opts.listen?.host ?? opts.target.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.address;
  const directions = (d: Direction | 'both'): Direction[] => (d === 'both' ? ['up', 'down'] : [d]);

  return {
    host,
    port: address.port,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`,
    setLatency(ms) {
      latencyMs = ms;
    },
    pause(direction = 'both') {
      for (const d of directions(direction)) paused[d] = true;
    },
    resume(direction = 'both') {
      for (const d of directions(direction)) paused[d] = false;
      for (const c of connections) for (const r of c.relays) r.pump();
    },
    reset() {
      for (const c of connections) {
        if (!c.client.destroyed) c.client.resetAndDestroy();
        if (!c.upstream.destroyed) c.upstream.resetAndDestroy();
      }
    },
    tap(fn) {
      taps.add(fn);
      return () => taps.delete(fn);
    },
    stats: () => ({ ...stats, bytes: { ...stats.bytes } }),
    async close() {
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const c of connections) {
        c.client.destroy();
        c.upstream.destroy();
      }
      await done;
    },
  };
}
