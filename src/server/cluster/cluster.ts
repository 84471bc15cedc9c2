import { randomUUID } from 'node:crypto';
import pg from 'pg';

/**
 * Several server replicas on one PostgreSQL database. Each keeps, in memory, what makes the poll
 * path cheap: the signed documents it serves and the devices it refuses. What one replica changes
 * there it announces to the others (PostgreSQL's LISTEN/NOTIFY), and they read it back from the
 * database. A replica that was cut off from the announcements (its listening connection dropped)
 * cannot know what it missed: it resyncs from the database when it is back, and every minute
 * anyway. The fleet-wide background work (rollout ticks, renewals) runs on one replica at a time,
 * the one holding an advisory lock; when it dies its session ends, and another takes the lock.
 */
export type ClusterMessage =
  /** These devices' desired-state documents changed in the database ('all': any of them may have). */
  | { kind: 'desired'; devices: string[] | 'all' }
  /** A device was accepted, revoked or made pending. */
  | { kind: 'device'; name: string; status: 'accepted' | 'pending' | 'revoked' };

export type Cluster = {
  /** This replica, in announcements and logs. */
  readonly id: string;
  /** Tells every other replica (never this one). Best effort: a lost announcement is made good by the next resync. */
  announce(message: ClusterMessage): Promise<void>;
  /** Whether this replica runs the fleet-wide background work now. */
  leads(): Promise<boolean>;
  /**
   * Where another replica holding this device's channel can be reached (its URL), asked of every
   * replica; null when none answers within `timeoutMs`.
   */
  locate(device: string, timeoutMs?: number): Promise<string | null>;
  /**
   * From now on, what the others announce goes to `handlers`, and this replica answers for the
   * devices it holds with `advertisedUrl`. A resync runs at once, for what was announced before.
   */
  attach(handlers: ClusterHandlers, advertisedUrl: string): void;
  close(): Promise<void>;
};

/** The one server of an SQLite store: nobody to tell, and it always leads. */
export function singleServer(): Cluster {
  return { id: 'single', announce: async () => undefined, leads: async () => true, locate: async () => null, attach: () => undefined, close: async () => undefined };
}

export type ClusterHandlers = {
  onMessage(message: ClusterMessage): void | Promise<void>;
  /** Read everything back from the database: announcements may have been missed. */
  onResync(): void | Promise<void>;
  /** Whether the device's channel is open to this replica (another replica's locate asks). */
  holds(device: string): boolean;
};

const CHANNEL = 'driftless_cluster';
/** PostgreSQL's payload limit is 8,000 bytes; device lists longer than this go in several announcements. */
const MAX_PAYLOAD = 7_000;
const RESYNC_EVERY_MS = 60_000;

/** Between replicas only: who holds a device's channel, and the answer to the one who asked. */
type Question = { kind: 'where'; device: string; question: string };
type Answer = { kind: 'here'; device: string; question: string; to: string; url: string };
type Wire = (ClusterMessage | Question | Answer) & { from: string };

export async function joinPostgresCluster(url: string, opts: { resyncEveryMs?: number; log?: (line: string) => void } = {}): Promise<Cluster> {
  const id = randomUUID().slice(0, 8);
  const log = opts.log ?? (() => undefined);
  let handlers: ClusterHandlers | null = null;
  let advertisedUrl = '';
  let closed = false;
  let listener: pg.Client | null = null;
  let lock: pg.Client | null = null;
  let leading = false;
  let reconnectMs = 500;
  let reconnectTimer: NodeJS.Timeout | null = null;

  const deliver = (text: string | undefined) => {
    let wire: Wire;
    try {
      wire = JSON.parse(text ?? '') as Wire;
    } catch {
      return;
    }
    if (wire.from === id) return;
    if (wire.kind === 'where') {
      if (handlers?.holds(wire.device)) void send({ kind: 'here', device: wire.device, question: wire.question, to: wire.from, url: advertisedUrl }).catch(() => undefined);
      return;
    }
    if (wire.kind === 'here') {
      if (wire.to === id) questions.get(wire.question)?.(wire.url);
      return;
    }
    const { from: _from, ...message } = wire;
    if (!handlers) return; // not attached yet: attaching resyncs
    void Promise.resolve(handlers.onMessage(message as ClusterMessage)).catch((error: unknown) => log(`cluster message ${message.kind} failed: ${(error as Error).message}`));
  };
  const questions = new Map<string, (url: string) => void>();

  const resync = () => void Promise.resolve(handlers?.onResync()).catch((error: unknown) => log(`cluster resync failed: ${(error as Error).message}`));

  async function listen(): Promise<void> {
    const client = new pg.Client({ connectionString: url, application_name: 'driftless server', connectionTimeoutMillis: 10_000 });
    client.on('notification', (n) => deliver(n.payload));
    client.on('error', () => undefined);
    client.on('end', () => {
      if (listener !== client || closed) return;
      listener = null;
      log('cluster: lost the announcement connection; reconnecting');
      scheduleReconnect();
    });
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}`);
    listener = client;
  }

  function scheduleReconnect(): void {
    if (closed || reconnectTimer) return;
    reconnectTimer = setTimeout(() => {
      reconnectTimer = null;
      listen().then(
        () => {
          reconnectMs = 500;
          log('cluster: announcements back; resyncing from the database');
          resync();
        },
        () => {
          reconnectMs = Math.min(reconnectMs * 2, 30_000);
          scheduleReconnect();
        },
      );
    }, reconnectMs);
  }

  await listen();
  const periodic = setInterval(resync, opts.resyncEveryMs ?? RESYNC_EVERY_MS);
  periodic.unref();

  async function send(message: ClusterMessage | Question | Answer): Promise<void> {
    const client = listener;
    if (!client) return; // cut off: the others resync when their period comes
    await client.query('SELECT pg_notify($1, $2)', [CHANNEL, JSON.stringify({ ...message, from: id } satisfies Wire)]);
  }

  return {
    id,
    async announce(message) {
      if (closed) return;
      try {
        if (message.kind === 'desired' && message.devices !== 'all') {
          for (const devices of chunks(message.devices)) await send({ kind: 'desired', devices });
        } else {
          await send(message);
        }
      } catch (error) {
        log(`cluster: an announcement was lost (${(error as Error).message}); the others will resync`);
      }
    },
    async leads() {
      if (closed) return false;
      if (leading && lock) return true;
      try {
        const client = lock ?? new pg.Client({ connectionString: url, application_name: 'driftless server', connectionTimeoutMillis: 10_000 });
        if (!lock) {
          client.on('error', () => undefined);
          client.on('end', () => {
            if (lock !== client) return;
            lock = null;
            if (leading) log('cluster: lost the lead (its connection dropped)');
            leading = false;
          });
          await client.connect();
          lock = client;
        }
        const { rows } = await client.query<{ locked: boolean }>(`SELECT pg_try_advisory_lock(hashtext('driftless cluster lead')) AS locked`);
        leading = rows[0]?.locked === true;
        if (leading) log(`cluster: replica ${id} leads (rollout ticks, renewals)`);
        return leading;
      } catch {
        return false;
      }
    },
    async locate(device, timeoutMs = 1000) {
      if (closed || !listener) return null;
      const question = randomUUID();
      const answered = new Promise<string | null>((resolve) => {
        const timer = setTimeout(() => resolve(null), timeoutMs);
        questions.set(question, (url) => {
          clearTimeout(timer);
          resolve(url);
        });
      });
      try {
        await send({ kind: 'where', device, question });
        return await answered;
      } catch {
        return null;
      } finally {
        questions.delete(question);
      }
    },
    attach(given, url) {
      handlers = given;
      advertisedUrl = url;
      resync();
    },
    async close() {
      closed = true;
      clearInterval(periodic);
      if (reconnectTimer) clearTimeout(reconnectTimer);
      const ending = [listener, lock].filter((c): c is pg.Client => c !== null);
      listener = null;
      lock = null;
      leading = false;
      await Promise.all(ending.map((c) => c.end().catch(() => undefined)));
    },
  };
}

/** Device names in lists whose announcement fits PostgreSQL's payload limit. */
export function chunks(devices: readonly string[], maxBytes = MAX_PAYLOAD): string[][] {
  const out: string[][] = [];
  let current: string[] = [];
  let size = 0;
  for (const device of devices) {
    const cost = Buffer.byteLength(JSON.stringify(device)) + 1;
    if (current.length > 0 && size + cost > maxBytes) {
      out.push(current);
      current = [];
      size = 0;
    }
    current.push(device);
    size += cost;
  }
  if (current.length > 0) out.push(current);
  return out;
}
