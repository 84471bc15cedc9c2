import { arch, cpus, hostname, platform, totalmem } from 'node:os';
import { canonicalJson } from '../protocol/canonical.ts';
import { DriftlessError } from '../protocol/errors.ts';
import { SignedDesiredState, type DesiredComponent, type DeviceEvent, type Facts, type StatusReport } from '../protocol/messages.ts';
import type { HealthCheck, Labels } from '../protocol/resources.ts';
import { isValid } from '../protocol/validate.ts';
import { followRotations, KeyRotation } from '../protocol/key-rotation.ts';
import { keyId } from '../protocol/signing.ts';
import { applySteps, createExecutors } from './apply/executors.ts';
import { DriverError, type RuntimeDriver, type RuntimeKind } from './drivers/driver.ts';
import { createIdentity, keysOf, loadIdentity, pinServerKey, type Identity, type Keys } from './enroll/identity.ts';
import type { ProbeResult } from './health/health.ts';
import { waitForHealth, type ProbeTarget } from './health/probe.ts';
import { createLedgerStore } from './ledger/ledger.ts';
import { startLoop, type Loop } from './loop/loop.ts';
import { createHostMetrics } from './outbox/host-metrics.ts';
import { createOutbox } from './outbox/outbox.ts';
import { createTelemetry, type LogSource } from './outbox/telemetry.ts';
import { plan, type ObservedInstance } from './plan/plan.ts';
import { componentStatuses } from './plan/status.ts';
import { createDirStorage, readJson, writeJson, type Storage } from './storage/storage.ts';
import { createContactGate, DEFAULT_BACKOFF, type Backoff } from './sync/backoff.ts';
import type { SelfUpdate } from './slots/self-update.ts';
import { createServerClient, type ServerClient, type Transport } from './sync/client.ts';
import type { ChannelFactory, ChannelHandle } from './terminal/device-channel.ts';
import { loadTrustState, saveTrustState, type TrustState } from './sync/trust-state.ts';
import { verifyDesiredState, type Trusted, type TrustPolicy } from './sync/verify.ts';

export const AGENT_VERSION = '0.1.0';
export { MIN_OUTBOX_QUOTA } from './outbox/outbox.ts';
export type { Transport } from './sync/client.ts';

export type AgentDeps = {
  dataDir: string;
  /** Where durable state goes; defaults to files in dataDir (tests substitute a crash-simulating one). */
  storage?: Storage;
  serverUrl: string;
  enrollToken: string;
  name: string;
  site?: string;
  labels?: Labels;
  drivers: Partial<Record<RuntimeKind, RuntimeDriver>>;
  now?: () => number;
  log?: (message: string) => void;
  /** Seconds between desired-state polls; the server's advice is used when absent. */
  pollSeconds?: number;
  /** Seconds between reconcile passes that repair local drift. */
  reconcileSeconds?: number;
  client?: ServerClient;
  /** How the default client reaches the server (fetch when absent; one trusting the server's own CA with `--ca`). */
  transport?: Transport;
  /** What the device reports about itself; by default read from this host (a simulated device has its own). */
  facts?: () => Facts;
  waitForHealth?: (check: HealthCheck | undefined, target: ProbeTarget, signal: AbortSignal) => Promise<ProbeResult>;
  /** How the agent waits after the server was unreachable or busy; jittered exponential by default. */
  backoff?: Backoff;
  random?: () => number;
  /** Disk the telemetry outbox may use before it drops its oldest records. */
  outboxQuotaBytes?: number;
  /** Seconds between telemetry passes (collect output, upload); 1 by default. */
  telemetrySeconds?: number;
  /** The version this agent runs as (a slot's release under the launcher); AGENT_VERSION by default. */
  version?: string;
  /** Host metrics to record; by default read from this host, null for none (a simulated device). */
  hostMetrics?: (() => Record<string, number>) | null;
  /** How often host metrics are sampled; every 5 minutes by default. */
  metricsEveryMs?: number;
  /** The agent's own A/B update, when it runs under `driftless launcher` (a simulated device has none). */
  selfUpdate?: SelfUpdate;
  /** The agent's WebSocket to the server (pull-now hints, remote terminal and exec); a simulated device has none. */
  channel?: ChannelFactory;
};

export type Agent = {
  /** Enrols if needed, then runs the loop until `stop()`. Rejects only when enrollment is refused. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** One whole pass now: pull, reconcile until converged, report. */
  sync(): Promise<void>;
  identity(): Identity | null;
};

const DESIRED_FILE = 'desired.json';
const MAX_STEPS_PER_PASS = 8;
const HEARTBEAT_MS = 60_000;

export function createAgent(deps: AgentDeps): Agent {
  const now = deps.now ?? Date.now;
  const nowIso = () => new Date(now()).toISOString();
  const rawLog = deps.log ?? (() => undefined);
  // The enrollment token and the private key never reach a log line, even echoed back in a server's message.
  const log = (message: string) => rawLog(withoutSecrets(message));
  const deviceFacts = deps.facts ?? (() => hostFacts(deps.version ?? AGENT_VERSION));
  const storage = deps.storage ?? createDirStorage(deps.dataDir);
  const ledger = createLedgerStore(storage);
  const outbox = createOutbox(storage, deps.outboxQuotaBytes === undefined ? {} : { quotaBytes: deps.outboxQuotaBytes });
  const emit = (event: Omit<DeviceEvent, 'seq' | 'at'>) => {
    log(`event ${event.type}${event.component ? ` ${event.component}` : ''}: ${event.message}`);
    outbox.add({ ...event, kind: 'event', at: nowIso() });
    outbox.commit();
  };
  /** One view of the link for every call to the server: a failure anywhere backs off all of them. */
  const gate = createContactGate(deps.backoff ?? DEFAULT_BACKOFF, deps.random ?? Math.random);
  const telemetry = createTelemetry({
    outbox,
    upload: (batch) => serverClient().postTelemetry(batch),
    gate,
    now,
    log,
    hostMetrics: deps.hostMetrics === undefined ? createHostMetrics(deps.dataDir) : deps.hostMetrics,
    ...(deps.metricsEveryMs === undefined ? {} : { metricsEveryMs: deps.metricsEveryMs }),
  });
  const executors = createExecutors({
    drivers: deps.drivers,
    ledger,
    emit,
    waitForHealth: deps.waitForHealth ?? ((check, target, signal) => waitForHealth(check, target, { signal })),
    nowIso,
    log,
  });

  let identity = loadIdentity(storage);
  let keys: Keys | null = identity ? keysOf(identity) : null;
  let client: ServerClient | null = deps.client ?? null;
  let trusted: Trusted | null = null;
  /** The rollback floor and pinned release keys, durable apart from the document. */
  let trustState: TrustState | null = loadTrustState(storage);
  const policy = (nowMs: number | null): TrustPolicy => ({ nowMs, highWater: trustState, releaseKeys: trustState?.releaseKeys ?? [] });
  let etag: string | null = null;
  let pollSeconds = deps.pollSeconds ?? 30;
  let lastPollMs = -Infinity;
  let lastRefusal: string | null = null;
  let lastReport = { text: '', atMs: -Infinity };
  const since = new Map<string, { state: string; at: string }>();
  let abort = new AbortController();
  let loop: Loop | null = null;
  let telemetryLoop: Loop | null = null;
  let channel: ChannelHandle | null = null;
  /** A hint from the server: the next pass pulls whatever the poll interval says. */
  let pullRequested = false;
  /** What the last reconcile saw: the telemetry loop reads output of these, without asking the runtime again. */
  let lastSeen: ObservedInstance[] = [];

  function loadTrusted(): void {
    if (!keys || !identity) return;
    const stored = readJson(storage, DESIRED_FILE, (v): v is SignedDesiredState => isValid(SignedDesiredState, v));
    if (!stored) return;
    // Trusted when it arrived, so its expiry does not matter now; the floor does (a restored old copy).
    const verdict = verifyDesiredState(stored, keys.server, identity.name, null, policy(null));
    if (verdict.ok) {
      trusted = verdict.trusted;
      // A crash between writing the document and the floor: raise the floor now.
      if (!trustState || trustState.generation < trusted.state.generation) {
        trustState = saveTrustState(storage, trustState, { generation: trusted.state.generation, contentHash: trusted.contentHash, releaseKeys: [...(verdict.pinReleaseKeys ?? trustState?.releaseKeys ?? [])] });
      }
    } else emit({ type: 'desired-state-refused', message: `stored desired state not trusted (${verdict.refusal.code}): ${verdict.refusal.message}` });
  }
  loadTrusted();

  function withoutSecrets(text: string): string {
    let out = text;
    for (const secret of [deps.enrollToken, identity?.privateKey]) if (secret && secret.length >= 4) out = out.split(secret).join('[redacted]');
    return out;
  }

  function serverClient(): ServerClient {
    client ??= createServerClient({ serverUrl: deps.serverUrl, device: deps.name, privateKey: () => keys?.privateKey ?? null, now, ...(deps.transport ? { transport: deps.transport } : {}) });
    return client;
  }

  async function enroll(): Promise<void> {
    if (identity && identity.name !== deps.name) {
      throw new DriftlessError('conflict', `data directory ${deps.dataDir} belongs to device "${identity.name}", not "${deps.name}"`);
    }
    identity ??= createIdentity(storage, deps.name, deps.serverUrl);
    if (identity.serverKey) return;
    for (;;) {
      try {
        const answer = await serverClient().enroll({
          token: deps.enrollToken,
          name: identity.name,
          ...(deps.site ? { site: deps.site } : {}),
          labels: deps.labels ?? {},
          facts: deviceFacts(),
          publicKey: identity.publicKey,
        });
        identity = pinServerKey(storage, identity, answer.serverKey);
        keys = keysOf(identity);
        if (deps.pollSeconds === undefined) pollSeconds = answer.pollSeconds;
        gate.succeeded();
        log(`enrolled as ${identity.name} with ${deps.serverUrl}`);
        return;
      } catch (error) {
        // Unreachable or busy is worth waiting for (with the same back-off as every contact); anything else is a refusal.
        if (abort.signal.aborted || !gate.failed(error, now())) {
          throw new DriftlessError(error instanceof DriftlessError ? error.code : 'internal', `enrollment refused: ${withoutSecrets((error as Error).message)}`);
        }
        const delay = gate.waitMs(now());
        log(`${(error as Error).message}; retrying enrollment in ${Math.round(delay / 1000)}s`);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  /** Re-pins the server key when a rotation chain signed by the pinned key leads on; durable before it is used. */
  async function followKeyRotation(): Promise<boolean> {
    if (!identity?.serverKey) return false;
    // No rotations to be had (an older server, a lost link): the document stays refused, as it would have been.
    const listed = await serverClient().fetchKeyRotations().catch(() => null);
    const rotations = Array.isArray(listed) ? listed.filter((r): r is KeyRotation => isValid(KeyRotation, r)) : [];
    const next = followRotations(identity.serverKey, rotations);
    if (next === identity.serverKey) return false;
    identity = pinServerKey(storage, identity, next);
    keys = keysOf(identity);
    log(`server signing key rotated: pinned ${keyId(next)} (signed over by the key pinned before)`);
    return true;
  }

  async function pull(): Promise<void> {
    if (!keys || !identity) return;
    let answer;
    try {
      answer = await serverClient().fetchDesired(etag);
    } catch (error) {
      // A lost link or a busy server is retried on the back-off's schedule, not a whole poll interval later.
      if (!(error instanceof DriftlessError) || (error.code !== 'unavailable' && error.code !== 'busy')) lastPollMs = now();
      throw error;
    }
    lastPollMs = now();
    if (answer.status === 304) return;
    let verdict = verifyDesiredState(answer.document, keys.server, identity.name, trusted, policy(now()));
    // Signed by a key we have not pinned: the server may have rotated its key. Follow only rotations our pinned key signed.
    if (!verdict.ok && verdict.refusal.code === 'unknown-key' && (await followKeyRotation())) {
      verdict = verifyDesiredState(answer.document, keys.server, identity.name, trusted, policy(now()));
    }
    if (!verdict.ok) {
      // Remember the refused document's tag so it is not downloaded again until the server changes it.
      etag = answer.etag;
      const message = `refused desired state (${verdict.refusal.code}): ${verdict.refusal.message}`;
      if (message !== lastRefusal) emit({ type: 'desired-state-refused', message });
      lastRefusal = message;
      return;
    }
    lastRefusal = null;
    etag = answer.etag;
    if (!verdict.changed) return;
    writeJson(storage, DESIRED_FILE, answer.document);
    // After the document: a crash between the two leaves a floor lower than the document, never higher.
    trustState = saveTrustState(storage, trustState, {
      generation: verdict.trusted.state.generation,
      contentHash: verdict.trusted.contentHash,
      releaseKeys: [...(verdict.pinReleaseKeys ?? trustState?.releaseKeys ?? [])],
    });
    if (verdict.pinReleaseKeys) log(`pinned ${verdict.pinReleaseKeys.length} release key(s): components must be signed by them from now on`);
    trusted = verdict.trusted;
    log(`trusted desired state generation ${trusted.state.generation} (${trusted.state.components.length} components)`);
  }

  async function observe(): Promise<{ instances: ObservedInstance[]; unavailable: RuntimeKind[] }> {
    const instances: ObservedInstance[] = [];
    const unavailable: RuntimeKind[] = [];
    for (const kind of ['container', 'process'] as const) {
      const driver = deps.drivers[kind];
      if (!driver) {
        unavailable.push(kind);
        continue;
      }
      try {
        for (const instance of await driver.list()) instances.push({ ...instance, runtime: kind });
      } catch (error) {
        if (!(error instanceof DriverError) || error.reason !== 'runtime-unavailable') throw error;
        unavailable.push(kind);
      }
    }
    return { instances, unavailable };
  }

  type Observation = Awaited<ReturnType<typeof observe>>;

  /** Plans and applies until the plan is empty; returns what it saw then (null if it had to stop first). */
  async function reconcile(signal: AbortSignal): Promise<Observation | null> {
    const desired: DesiredComponent[] | null = trusted?.state.components ?? null;
    for (let round = 0; round < MAX_STEPS_PER_PASS; round++) {
      const seen = await observe();
      const steps = plan({ desired, instances: seen.instances, ledger: ledger.get(), unavailable: seen.unavailable, nowMs: now() });
      if (steps.length === 0) return seen;
      await applySteps(executors, steps, signal);
    }
    return null;
  }

  /** Reports component states, from the converged observation when there is one (no second look at the runtime). */
  async function report(converged: Observation | null): Promise<void> {
    if (!keys || !trusted) return;
    const { instances, unavailable } = converged ?? (await observe());
    const stamp = (key: string, state: string) => {
      const previous = since.get(key);
      if (previous?.state === state) return previous.at;
      const at = nowIso();
      since.set(key, { state, at });
      return at;
    };
    const components = [...componentStatuses(trusted.state.components, instances, ledger.get(), unavailable, stamp), ...(deps.selfUpdate?.statuses(trusted.state.components, stamp) ?? [])];
    const text = canonicalJson({ generation: trusted.state.generation, components });
    if (text === lastReport.text && now() - lastReport.atMs < HEARTBEAT_MS) return;
    // Events travel with the rest of the telemetry, from the outbox.
    const body: StatusReport = { generation: trusted.state.generation, reportedAt: nowIso(), components, events: [], facts: deviceFacts() };
    await serverClient().postStatus(body);
    lastReport = { text, atMs: now() };
  }

  /** A call to the server, unless the agent is backing off; a lost link or a busy server extends the back-off. */
  async function contact(what: string, call: () => Promise<void>): Promise<boolean> {
    if (gate.waitMs(now()) > 0) return false;
    try {
      await call();
      gate.succeeded();
      return true;
    } catch (error) {
      const backingOff = gate.failed(error, now());
      log(`${what}: ${(error as Error).message}${backingOff ? `; next attempt in ${Math.round(gate.waitMs(now()) / 1000)}s` : ''}`);
      return false;
    }
  }

  async function pass(signal: AbortSignal, forcePull: boolean): Promise<void> {
    const wanted = forcePull || pullRequested;
    pullRequested = false;
    const pulled = wanted || now() - lastPollMs >= pollSeconds * 1000 ? await contact('desired state not fetched', pull) : true;
    if (deps.selfUpdate && keys) {
      const context = { desired: trusted?.state.components ?? [], fetchArtifact: (sha256: string) => serverClient().fetchArtifact(sha256), trustedKey: keys.server.key, storage, emit };
      await deps.selfUpdate.pass(context).catch((error: unknown) => log(`agent self-update: ${(error as Error).message}`));
    }
    let failure: unknown = null;
    let converged: Observation | null = null;
    try {
      converged = await reconcile(signal);
      if (converged) lastSeen = converged.instances;
    } catch (error) {
      failure = error;
    }
    const reported = await contact('status not reported', () => report(converged));
    if (failure) throw failure;
    // A trial of a new agent release is kept only once it has done its whole job once.
    if (pulled && reported && converged && trusted) deps.selfUpdate?.passed();
  }

  /** Collects component output and host metrics into the outbox, offline too, and uploads what is committed. */
  async function telemetryPass(): Promise<void> {
    const sources: LogSource[] = [];
    for (const instance of lastSeen) {
      const driver = deps.drivers[instance.runtime];
      if (driver) sources.push({ key: instance.key, component: instance.component, driver });
    }
    await telemetry.collect(sources);
    telemetry.sample(lastSeen);
    if (keys) await telemetry.upload();
  }

  return {
    async start() {
      abort = new AbortController();
      await enroll();
      const reconcileMs = (deps.reconcileSeconds ?? 5) * 1000;
      loop = startLoop({
        pass: (signal) => pass(signal, false),
        intervalMs: () => Math.min(reconcileMs, Math.max(0, pollSeconds * 1000 - (now() - lastPollMs), gate.waitMs(now()))),
        signal: abort.signal,
        onError: (error, retryInMs) => log(`reconcile failed: ${(error as Error).message}; retrying in ${Math.round(retryInMs / 1000)}s`),
      });
      const telemetryMs = (deps.telemetrySeconds ?? 1) * 1000;
      telemetryLoop = startLoop({
        pass: telemetryPass,
        intervalMs: () => telemetryMs,
        signal: abort.signal,
        onError: (error, retryInMs) => log(`telemetry failed: ${(error as Error).message}; retrying in ${Math.round(retryInMs / 1000)}s`),
      });
      channel ??=
        deps.channel?.({
          serverUrl: deps.serverUrl,
          sessionToken: (renew) => serverClient().sessionToken(renew),
          pullNow: () => {
            pullRequested = true;
            loop?.trigger();
          },
          components: () => lastSeen,
          drivers: deps.drivers,
        }) ?? null;
    },
    async stop() {
      abort.abort();
      await channel?.stop();
      channel = null;
      await Promise.all([loop?.done, telemetryLoop?.done]);
      loop = null;
      telemetryLoop = null;
    },
    async sync() {
      await pass(abort.signal, true);
      await telemetryPass();
    },
    identity: () => identity,
  };
}

function hostFacts(agentVersion: string): Facts {
  return { hostname: hostname(), os: platform(), arch: arch(), cpus: cpus().length, memoryMB: Math.round(totalmem() / 2 ** 20), agentVersion };
}
