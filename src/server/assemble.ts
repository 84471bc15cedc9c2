import type { FastifyInstance } from 'fastify';
import { keyId, loadPrivateKey } from '../protocol/signing.ts';
import { DEFAULT_ADMISSION, type AdmissionConfig } from './admission.ts';
import { buildApp } from './app.ts';
import { createDeviceGate, type DeviceGate } from './auth/device-gate.ts';
import { singleServer, type Cluster, type ClusterHandlers } from './cluster/cluster.ts';
import { resignDesired } from './keys/signing-keys.ts';
import { createAuditLog, type AuditLog } from './audit/audit-log.ts';
import type { ServerLogger } from './log-redaction.ts';
import type { AuthLimitConfig } from './rate-limit.ts';
import type { ArtifactFiles } from './artifacts/artifact-files.ts';
import { createDesiredService, DEFAULT_DESIRED_VALIDITY_MS, type DesiredService } from './desired/desired-service.ts';
import { createPresence, type Presence } from './presence.ts';
import { createDeviceChannels, type DeviceChannels } from './terminal/device-channels.ts';
import type { Recordings } from './terminal/recordings.ts';
import { createRolloutEngine, type RolloutEngine } from './rollout/rollout-engine.ts';
import type { DeviceRecord, Store } from './store/store.ts';

export type AssembleOptions = {
  store: Store;
  now: () => number;
  /** The server's Ed25519 signing key pair (PKCS#8 and SPKI, base64). */
  signing: { privateKey: string; publicKey: string };
  sessionSecret: Buffer;
  pollSeconds: number;
  logger?: ServerLogger;
  /** Serve HTTPS with this certificate and key (PEM). */
  tls?: { cert: string; key: string };
  /** How fast one source may try credentials; DEFAULT_AUTH_LIMITS when absent. */
  authLimits?: AuthLimitConfig;
  /** Who counts as online for the rollout engine; by default, heard from within three polls. */
  isOnline?: (device: DeviceRecord) => boolean;
  /** Where uploaded artifacts are kept (files by digest, or the database for replicas); none: the server refuses uploads. */
  artifactFiles?: ArtifactFiles;
  /** Where terminal and exec sessions are recorded (files, or the database for replicas); none: the server opens no remote sessions. */
  recordings?: Recordings;
  /** Limits on costly device requests at once; DEFAULT_ADMISSION when absent. */
  admission?: AdmissionConfig;
  /** Release public keys (SPKI, base64) devices pin; their components must then be signed releases. */
  releaseKeys?: readonly string[];
  /** How long a desired-state document is valid; DEFAULT_DESIRED_VALIDITY_MS when absent, null: never expires. */
  desiredValidityMs?: number | null;
  /** The built dashboard to serve at `/` (web/dist by default); null: the API only. */
  dashboardDir?: string | null;
  /** How old a fleet snapshot the dashboard's views may answer from; 1 s when absent. */
  fleetSnapshotMs?: number;
  /** The other server replicas on the same database, told what this one changes; none (singleServer) by default. */
  cluster?: Cluster;
};

export type Assembled = {
  app: FastifyInstance;
  desired: DesiredService;
  rollouts: RolloutEngine;
  presence: Presence;
  /** Connected agents' channels: hints, terminal and exec sessions. */
  channels: DeviceChannels;
  /** One rollout tick, as the server's timer runs it: advance every rollout and publish what changed. Never two at once. */
  tickRollouts(): Promise<void>;
  stats: { rolloutTicks: number; rolloutTickMs: number };
  /** The audit trail the app records into. */
  audit: AuditLog;
  /** What this replica does with what the others announce (plug into the cluster). */
  clusterHandlers: ClusterHandlers;
};

/** The server's parts wired together over a store, without listening: what startServer runs and what in-process tests build. */
export async function assembleServer(opts: AssembleOptions): Promise<Assembled> {
  const { store, now } = opts;
  const offlineAfterMs = Math.max(3 * opts.pollSeconds * 1000, 15_000);
  const presence = createPresence(store);
  const rollouts = createRolloutEngine({ isOnline: opts.isOnline ?? ((device) => presence.isOnline(device, now(), offlineAfterMs)) });
  const channels = createDeviceChannels();
  const cluster = opts.cluster ?? singleServer();
  // A device whose document changed is told to pull now, over its channel, instead of at its next
  // poll; the other replicas are told to serve the new document (and tell their devices).
  const onPublish = (devices: string[]) => {
    channels.hint(devices);
    void cluster.announce({ kind: 'desired', devices });
  };
  const desired = createDesiredService({ signingKey: loadPrivateKey(opts.signing.privateKey), keyId: keyId(opts.signing.publicKey), rollouts, now, onPublish, ...desiredTrust(opts) });
  // Accept, revoke, pending: told to the other replicas, which refuse (and disconnect) a revoked device too.
  const localGate = createDeviceGate();
  await localGate.load(store);
  const deviceGate: DeviceGate = {
    ...localGate,
    set(device, status) {
      localGate.set(device, status);
      void cluster.announce({ kind: 'device', name: device, status });
    },
  };
  const clusterHandlers: Assembled['clusterHandlers'] = {
    async onMessage(message) {
      if (message.kind === 'desired') channels.hint(await desired.reload(store, message.devices));
      else {
        localGate.set(message.name, message.status);
        if (message.status !== 'accepted') channels.disconnect(message.name, message.status);
      }
    },
    async onResync() {
      channels.hint(await desired.reload(store, 'all'));
      await localGate.load(store);
    },
    holds: (device) => channels.info(device) !== null,
  };
  // After `driftless server rotate-key`: documents signed by the old key are signed anew, then every
  // tenant's desired state is recomputed (artifact signatures in it changed too).
  const resigned = await resignDesired(store, opts.signing);
  await desired.warm(store);
  if (resigned > 0) for (const tenant of await store.listTenants()) await desired.change(store.forTenant(tenant.name), async () => ({ result: undefined, devices: 'all' }));
  const audit = createAuditLog({ store, now });
  const app = await buildApp({
    store,
    audit,
    desired,
    rollouts,
    presence,
    channels,
    deviceGate,
    ...(opts.cluster ? { locateDevice: (device: string) => cluster.locate(device) } : {}),
    ...(opts.recordings ? { recordings: opts.recordings } : {}),
    serverKey: { publicKey: opts.signing.publicKey, keyId: keyId(opts.signing.publicKey) },
    sessionSecret: opts.sessionSecret,
    ...(opts.artifactFiles ? { artifacts: { files: opts.artifactFiles, signingKey: loadPrivateKey(opts.signing.privateKey) } } : {}),
    now,
    pollSeconds: opts.pollSeconds,
    offlineAfterMs,
    admission: opts.admission ?? DEFAULT_ADMISSION,
    ...(opts.logger === undefined ? {} : { logger: opts.logger }),
    ...(opts.tls === undefined ? {} : { tls: opts.tls }),
    ...(opts.authLimits === undefined ? {} : { authLimits: opts.authLimits }),
    ...(opts.dashboardDir === undefined ? {} : { dashboardDir: opts.dashboardDir }),
    ...(opts.fleetSnapshotMs === undefined ? {} : { fleetSnapshotMs: opts.fleetSnapshotMs }),
  });

  let ticking: Promise<void> | null = null;
  const stats = { rolloutTicks: 0, rolloutTickMs: 0 };
  const tickRollouts = () => {
    const started = performance.now();
    // Rollout by rollout, each in a transaction of its own (a Deployment selects devices of its own
    // tenant only): one that fails is logged and tried again next tick, and holds no other back.
    const tickTenants = async () => {
      for (const tenant of await store.listTenants()) {
        const view = store.forTenant(tenant.name);
        for (const name of await rollouts.unfinished(view)) {
          try {
            await desired.change(view, async (tx) => ({ result: undefined, devices: await rollouts.tickOne(tx, name, now()) }));
          } catch (error) {
            app.log.error({ err: error, rollout: name, tenant: tenant.name }, 'rollout tick failed');
          }
        }
      }
    };
    return (ticking ??= tickTenants().finally(() => {
        ticking = null;
        stats.rolloutTicks++;
        stats.rolloutTickMs += performance.now() - started;
      }));
  };
  return { app, desired, rollouts, presence, channels, audit, tickRollouts, stats, clusterHandlers };
}

/** What the desired service needs for update trust: release keys, and how long a document is valid. */
function desiredTrust(opts: AssembleOptions): { releaseKeys?: readonly string[]; validityMs?: number } {
  const validityMs = opts.desiredValidityMs === undefined ? DEFAULT_DESIRED_VALIDITY_MS : opts.desiredValidityMs;
  return { ...(opts.releaseKeys ? { releaseKeys: opts.releaseKeys } : {}), ...(validityMs === null ? {} : { validityMs }) };
}
