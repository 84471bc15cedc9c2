import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { generateKeyPair } from '../protocol/signing.ts';
import type { AdmissionConfig } from './admission.ts';
import { assembleServer } from './assemble.ts';
import { hashToken, newSecretToken } from './auth/tokens.ts';
import { migrateToLatest } from './store/migrate.ts';
import { openSqlite } from './store/sqlite.ts';
import { createSqlStore, type Store } from './store/store.ts';

export type ServerOptions = {
  dataDir: string;
  host: string;
  port: number;
  /** The first admin token; generated when absent. */
  adminToken?: string;
  /** The fleet's bootstrap enrollment token; generated when absent. */
  enrollToken?: string;
  pollSeconds?: number;
  /** How often the rollout engine ticks (default 2 s). */
  tickMs?: number;
  logger?: boolean;
  now?: () => number;
  /** Limits on costly device requests at once (the defaults of admission.ts when absent). */
  admission?: AdmissionConfig;
};

export type RunningServer = {
  app: FastifyInstance;
  url: string;
  store: Store;
  /** Credentials made on this start (shown once), if any. */
  created: { adminToken?: string; enrollToken?: string };
  /** What the rollout engine has cost so far: ticks run and their total time, desired-state refresh included. */
  stats: { readonly rolloutTicks: number; readonly rolloutTickMs: number };
  close(): Promise<void>;
};

/** Opens the store, keys and credentials, and serves the API until `close()`. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const now = options.now ?? Date.now;
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const db = openSqlite(join(options.dataDir, 'driftless.db'));
  await migrateToLatest(db);
  const store = createSqlStore(db);

  const signing = await loadOrCreate(store, 'signing-key', () => JSON.stringify(generateKeyPair()));
  const { privateKey, publicKey } = JSON.parse(signing) as { privateKey: string; publicKey: string };
  const sessionSecret = Buffer.from(await loadOrCreate(store, 'session-secret', () => randomBytes(32).toString('base64')), 'base64');
  const created = await ensureCredentials(store, options, new Date(now()).toISOString());

  const { app, presence, tickRollouts, stats } = await assembleServer({
    store,
    now,
    signing: { privateKey, publicKey },
    sessionSecret,
    pollSeconds: options.pollSeconds ?? 30,
    artifactDir: join(options.dataDir, 'artifacts'),
    ...(options.admission ? { admission: options.admission } : {}),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  });
  const background = [
    setInterval(() => void presence.flush().catch((e: unknown) => app.log.error(e)), 5_000),
    setInterval(() => void tickRollouts().catch((e: unknown) => app.log.error(e)), options.tickMs ?? 2_000),
    setInterval(() => void pruneTelemetry(store, now()).catch((e: unknown) => app.log.error(e)), 10 * 60_000),
  ];
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;

  return {
    app,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    store,
    created,
    stats,
    async close() {
      for (const timer of background) clearInterval(timer);
      await app.close();
      await presence.flush().catch(() => undefined);
      await db.destroy();
    },
  };
}

/** Logs are kept a week, metrics two days (what a dashboard chart and an incident review look back on). */
const LOG_RETENTION_MS = 7 * 24 * 3600_000;
const METRIC_RETENTION_MS = 2 * 24 * 3600_000;

function pruneTelemetry(store: Store, nowMs: number): Promise<void> {
  return store.pruneTelemetry({ logsBefore: new Date(nowMs - LOG_RETENTION_MS).toISOString(), metricsBefore: new Date(nowMs - METRIC_RETENTION_MS).toISOString() });
}

async function loadOrCreate(store: Store, key: string, make: () => string): Promise<string> {
  const existing = await store.getMeta(key);
  if (existing) return existing;
  const value = make();
  await store.setMeta(key, value);
  return value;
}

/** On first start (or when a script names them) make the admin token and the bootstrap enrollment token. */
async function ensureCredentials(store: Store, options: ServerOptions, nowIso: string): Promise<RunningServer['created']> {
  const created: RunningServer['created'] = {};
  await store.transaction(async (tx) => {
    const firstStart = (await tx.countApiTokens()) === 0;
    const admin = options.adminToken ?? (firstStart ? newSecretToken('dla') : undefined);
    if (admin && !(await tx.findApiToken(hashToken(admin)))) {
      await tx.insertApiToken({ id: randomUUID(), tokenHash: hashToken(admin), role: 'admin', description: 'first admin', createdAt: nowIso, expiresAt: null, revokedAt: null });
      created.adminToken = admin;
    }
    const enroll = options.enrollToken ?? (firstStart ? newSecretToken('dle') : undefined);
    if (enroll && !(await tx.findEnrollToken(hashToken(enroll)))) {
      await tx.insertEnrollToken({ id: randomUUID(), tokenHash: hashToken(enroll), description: 'bootstrap', createdAt: nowIso, expiresAt: null, revokedAt: null });
      created.enrollToken = enroll;
    }
  });
  return created;
}
