import type { FastifyInstance } from 'fastify';
import { keyId, loadPrivateKey } from '../protocol/signing.ts';
import { DEFAULT_ADMISSION, type AdmissionConfig } from './admission.ts';
import { buildApp } from './app.ts';
import { createArtifactFiles } from './artifacts/artifact-files.ts';
import { createDesiredService, type DesiredService } from './desired/desired-service.ts';
import { createPresence, type Presence } from './presence.ts';
import { createRolloutEngine, type RolloutEngine } from './rollout/rollout-engine.ts';
import type { DeviceRecord, Store } from './store/store.ts';

export type AssembleOptions = {
  store: Store;
  now: () => number;
  /** The server's Ed25519 signing key pair (PKCS#8 and SPKI, base64). */
  signing: { privateKey: string; publicKey: string };
  sessionSecret: Buffer;
  pollSeconds: number;
  logger?: boolean;
  /** Who counts as online for the rollout engine; by default, heard from within three polls. */
  isOnline?: (device: DeviceRecord) => boolean;
  /** Where uploaded artifacts are kept (one file per digest); none: the server refuses uploads. */
  artifactDir?: string;
  /** Limits on costly device requests at once; DEFAULT_ADMISSION when absent. */
  admission?: AdmissionConfig;
};

export type Assembled = {
  app: FastifyInstance;
  desired: DesiredService;
  rollouts: RolloutEngine;
  presence: Presence;
  /** One rollout tick, as the server's timer runs it: advance every rollout and publish what changed. Never two at once. */
  tickRollouts(): Promise<void>;
  stats: { rolloutTicks: number; rolloutTickMs: number };
};

/** The server's parts wired together over a store, without listening: what startServer runs and what in-process tests build. */
export async function assembleServer(opts: AssembleOptions): Promise<Assembled> {
  const { store, now } = opts;
  const offlineAfterMs = Math.max(3 * opts.pollSeconds * 1000, 15_000);
  const presence = createPresence(store);
  const rollouts = createRolloutEngine({ isOnline: opts.isOnline ?? ((device) => presence.isOnline(device, now(), offlineAfterMs)) });
  const desired = createDesiredService({ signingKey: loadPrivateKey(opts.signing.privateKey), keyId: keyId(opts.signing.publicKey), rollouts, now });
  await desired.warm(store);
  const app = await buildApp({
    store,
    desired,
    rollouts,
    presence,
    serverKey: { publicKey: opts.signing.publicKey, keyId: keyId(opts.signing.publicKey) },
    sessionSecret: opts.sessionSecret,
    ...(opts.artifactDir === undefined ? {} : { artifacts: { files: createArtifactFiles(opts.artifactDir), signingKey: loadPrivateKey(opts.signing.privateKey) } }),
    now,
    pollSeconds: opts.pollSeconds,
    offlineAfterMs,
    admission: opts.admission ?? DEFAULT_ADMISSION,
    ...(opts.logger === undefined ? {} : { logger: opts.logger }),
  });

  let ticking: Promise<void> | null = null;
  const stats = { rolloutTicks: 0, rolloutTickMs: 0 };
  const tickRollouts = () => {
    const started = performance.now();
    return (ticking ??= desired
      .change(store, async (tx) => ({ result: undefined, devices: await rollouts.tick(tx, now()) }))
      .finally(() => {
        ticking = null;
        stats.rolloutTicks++;
        stats.rolloutTickMs += performance.now() - started;
      }));
  };
  return { app, desired, rollouts, presence, tickRollouts, stats };
}
