import { randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { rotateSigningKey } from './keys/signing-keys.ts';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { generateKeyPair } from '../protocol/signing.ts';
import type { AdmissionConfig } from './admission.ts';
import { assembleServer } from './assemble.ts';
import { ensureSelfSignedCertificate, localHosts } from './tls/self-signed.ts';
import { settleReleaseKeys } from './desired/release-keys.ts';
import { hashToken, newSecretToken } from './auth/tokens.ts';
import type { Kysely } from 'kysely';
import { createArtifactFiles, type ArtifactFiles } from './artifacts/artifact-files.ts';
import { createDatabaseArtifactFiles } from './artifacts/database-files.ts';
import { createDatabaseRecordings } from './terminal/database-recordings.ts';
import { createRecordings, type Recordings } from './terminal/recordings.ts';
import { joinPostgresCluster, singleServer, type Cluster } from './cluster/cluster.ts';
import { openDatabase, parseDatabaseUrl, type DatabaseTarget, type OpenDatabase } from './store/open.ts';
import { isPostgres } from './store/postgres.ts';
import type { Database } from './store/schema.ts';
import { createSqlStore, type Store } from './store/store.ts';

/** For the CLI: `--database` checked before anything starts, and shown without its password. */
export { parseDatabaseUrl, redactPassword } from './store/open.ts';

export type ServerOptions = {
  dataDir: string;
  /** `--database`: postgres://… or sqlite:PATH; absent, the SQLite file driftless.db in the data directory. */
  database?: string;
  host: string;
  port: number;
  /** The first admin token; generated when absent. */
  adminToken?: string;
  /** The fleet's bootstrap enrollment token; generated when absent. */
  enrollToken?: string;
  pollSeconds?: number;
  /** Replicas on PostgreSQL: how often each re-reads what the others changed, announced or not (default 60 s). */
  resyncSeconds?: number;
  /** Replicas on PostgreSQL: how the others reach this one, to pass on a terminal or exec for a device connected here (default: its own URL). */
  advertiseUrl?: string;
  /** How often the rollout engine ticks (default 2 s). */
  tickMs?: number;
  logger?: boolean;
  now?: () => number;
  /** Limits on costly device requests at once (the defaults of admission.ts when absent). */
  admission?: AdmissionConfig;
  /** Serve HTTPS: with this certificate and key (PEM), or with a self-signed one kept in the data directory. */
  tls?: { cert: string; key: string } | 'self-signed';
  /** Release public keys (SPKI, base64), kept in the store; devices pin them and then install only signed releases. */
  releaseKeys?: readonly string[];
  /** How long a desired-state document is valid before devices refuse it for new changes (default 24 h). */
  desiredValidityMs?: number;
  /** The built dashboard to serve (web/dist by default); null: the API only. */
  dashboardDir?: string | null;
  /** How old a fleet snapshot the dashboard's views may answer from (default 1 s). */
  fleetSnapshotMs?: number;
};

export type RunningServer = {
  app: FastifyInstance;
  url: string;
  store: Store;
  /** The TLS certificate served (null: plain HTTP); its file when the server made it, for clients to pin with --ca. */
  tls: { certFile: string | null; fingerprint256: string; created: boolean } | null;
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
  const target = databaseTarget(options.dataDir, options.database);
  const database = await openDatabase(target, { use: 'server', onIdleError: (error) => process.stderr.write(`database connection lost: ${error.message}\n`) });
  let cluster: Cluster = singleServer();
  try {
    // On PostgreSQL, one of any number of replicas.
    if (target.kind === 'postgres') cluster = await joinPostgresCluster(target.url, { resyncEveryMs: (options.resyncSeconds ?? 60) * 1000, log: (line) => process.stderr.write(`${line}\n`) });
    return await serve(options, now, database, cluster);
  } catch (error) {
    // Nothing half-started stays behind: the database (and its server lock) is let go.
    await cluster.close().catch(() => undefined);
    await database.close().catch(() => undefined);
    throw error;
  }
}

/**
 * Where artifacts and session recordings are kept: in the database on PostgreSQL, which every
 * replica shares; in the data directory of a lone SQLite server.
 */
function sharedFiles(options: ServerOptions, db: Kysely<Database>, now: () => number): { artifactFiles: ArtifactFiles; recordings: Recordings } {
  if (isPostgres(db)) return { artifactFiles: createDatabaseArtifactFiles(db), recordings: createDatabaseRecordings(db, now, (line) => process.stderr.write(`${line}\n`)) };
  return { artifactFiles: createArtifactFiles(join(options.dataDir, 'artifacts')), recordings: createRecordings(join(options.dataDir, 'recordings'), now) };
}

async function serve(options: ServerOptions, now: () => number, database: OpenDatabase, cluster: Cluster): Promise<RunningServer> {
  const store = createSqlStore(database.db);
  const signing = await loadOrCreate(store, 'signing-key', () => JSON.stringify(generateKeyPair()));
  const { privateKey, publicKey } = JSON.parse(signing) as { privateKey: string; publicKey: string };
  const sessionSecret = Buffer.from(await loadOrCreate(store, 'session-secret', () => randomBytes(32).toString('base64')), 'base64');
  const created = await ensureCredentials(store, options, new Date(now()).toISOString());
  const tls =
    options.tls === 'self-signed'
      ? ensureSelfSignedCertificate(options.dataDir, localHosts([options.host]))
      : options.tls
        ? { ...options.tls, certFile: null, fingerprint256: new X509Certificate(options.tls.cert).fingerprint256, created: false }
        : null;

  const releaseKeys = await settleReleaseKeys(store, options.releaseKeys);
  const { app, presence, desired, tickRollouts, stats, clusterHandlers } = await assembleServer({
    store,
    now,
    cluster,
    signing: { privateKey, publicKey },
    sessionSecret,
    pollSeconds: options.pollSeconds ?? 30,
    ...sharedFiles(options, database.db, now),
    ...(tls ? { tls: { cert: tls.cert, key: tls.key } } : {}),
    ...(releaseKeys.length > 0 ? { releaseKeys } : {}),
    ...(options.desiredValidityMs === undefined ? {} : { desiredValidityMs: options.desiredValidityMs }),
    ...(options.admission ? { admission: options.admission } : {}),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.dashboardDir === undefined ? {} : { dashboardDir: options.dashboardDir }),
    ...(options.fleetSnapshotMs === undefined ? {} : { fleetSnapshotMs: options.fleetSnapshotMs }),
  });
  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    await app.close().catch(() => undefined);
    throw error;
  }
  // Fleet-wide work runs on the replica that leads (the only one, on SQLite); last-seen times are each replica's own.
  const leading = (work: () => Promise<unknown>) => () => void cluster.leads().then((leads) => (leads ? work() : undefined)).catch((e: unknown) => app.log.error(e));
  const background = [
    setInterval(() => void presence.flush().catch((e: unknown) => app.log.error(e)), 5_000),
    setInterval(leading(tickRollouts), options.tickMs ?? 2_000),
    setInterval(leading(() => pruneTelemetry(store, now())), 10 * 60_000),
    // Documents are re-signed before they expire, here and never on the poll path.
    setInterval(leading(() => desired.renew(store)), RENEW_INTERVAL_MS),
  ];
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
  const url = `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  cluster.attach(clusterHandlers, options.advertiseUrl?.replace(/\/+$/, '') ?? url);

  return {
    app,
    url,
    tls: tls ? { certFile: tls.certFile, fingerprint256: tls.fingerprint256, created: tls.created } : null,
    store,
    created,
    stats,
    async close() {
      for (const timer of background) clearInterval(timer);
      await app.close();
      await presence.flush().catch(() => undefined);
      await cluster.close();
      await database.close();
    },
  };
}

/** Logs are kept a week, metrics two days (what a dashboard chart and an incident review look back on). */
const LOG_RETENTION_MS = 7 * 24 * 3600_000;
const METRIC_RETENTION_MS = 2 * 24 * 3600_000;

function pruneTelemetry(store: Store, nowMs: number): Promise<void> {
  return store.pruneTelemetry({ logsBefore: new Date(nowMs - LOG_RETENTION_MS).toISOString(), metricsBefore: new Date(nowMs - METRIC_RETENTION_MS).toISOString() });
}

/** Renewal runs in batches (1,000 documents a pass): 100,000 devices renewed within 17 minutes, the poll path untouched. */
const RENEW_INTERVAL_MS = 10_000;

/** Where the store lives: `--database`, else the data directory's SQLite file. */
function databaseTarget(dataDir: string, database: string | undefined): DatabaseTarget {
  return parseDatabaseUrl(database, join(dataDir, 'driftless.db'));
}

/** In one transaction, so two replicas starting together on one database keep the same key, not one each. */
async function loadOrCreate(store: Store, key: string, make: () => string): Promise<string> {
  return store.transaction(async (tx) => {
    const existing = await tx.getMeta(key);
    if (existing) return existing;
    const value = make();
    await tx.setMeta(key, value);
    return value;
  });
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

/**
 * Replaces the signing key of the server whose data directory this is (run while it is stopped):
 * see keys/signing-keys.ts. Devices follow the rotation; the server signs anew when it next starts.
 */
export async function rotateServerKey(dataDir: string, nowIso: string, database?: string): Promise<{ previousKeyId: string; keyId: string } | null> {
  const target = databaseTarget(dataDir, database);
  if (target.kind === 'sqlite' && !existsSync(target.path)) return null;
  // Refused while a server runs: it keeps its signing key in memory.
  const { db, close } = await openDatabase(target, { use: 'maintenance' });
  try {
    return await rotateSigningKey(createSqlStore(db), nowIso);
  } finally {
    await close();
  }
}
