import type { DeviceView, DriftEntry, DriftReason } from '../../protocol/resources.ts';
import type { Presence } from '../presence.ts';
import type { DeploymentRecord, IncidentRecord, RevisionRecord, RolloutRecord, SiteRecord, Store } from '../store/store.ts';
import { activeRolloutStates } from '../rollout/rollout-engine.ts';
import { fleetView, type FleetClock } from './views.ts';

/** One device in a word, worst first: what the overview counts and the device table filters by. */
export const fleetStates = ['offline', 'failed', 'reverted', 'updating', 'up-to-date'] as const;
export type FleetState = (typeof fleetStates)[number];

const failureReasons: ReadonlySet<string> = new Set(['health-check-failed', 'download-failed', 'start-failed']);

/** A device as the dashboard's tables see it: its view, its drift, one state and its region. */
export type FleetRow = { view: DeviceView; drift: DriftEntry[]; state: FleetState; reasons: DriftReason[]; region: string | null };

/** The whole fleet of one tenant at one moment, with what the overview puts beside it. */
export type FleetSnapshot = {
  builtAt: number;
  rows: FleetRow[];
  sites: SiteRecord[];
  deployments: { deployment: DeploymentRecord; revisions: RevisionRecord[] }[];
  rollouts: RolloutRecord[];
  incidents: IncidentRecord[];
};

/**
 * The state of one device. A device held on its stable revision by a rollout that no longer moves
 * (rolled back, aborted) runs what it should: it is not "updating" for ever.
 */
export function fleetStateOf(view: Pick<DeviceView, 'online' | 'components'>, drift: readonly DriftEntry[], moving: (deployment: string) => boolean): FleetState {
  if (!view.online) return 'offline';
  if (view.components.some((c) => c.state === 'failed') || drift.some((e) => failureReasons.has(e.reason))) return 'failed';
  if (drift.some((e) => e.reason === 'reverted')) return 'reverted';
  const updating = drift.some((e) => (e.reason === 'held-by-rollout' || e.reason === 'waiting-for-window' ? moving(e.deployment) : true));
  return updating ? 'updating' : 'up-to-date';
}

export type FleetIndex = {
  /** The tenant's fleet, as of at most `maxAgeMs` ago, or up to `maxStaleMs` while a newer one is being built. */
  snapshot(store: Store, tenant: string): Promise<FleetSnapshot>;
};

type Entry = { wall: number; server: number; snapshot: Promise<FleetSnapshot>; settled: boolean; next: Promise<FleetSnapshot> | null };

/**
 * Dashboards poll every few seconds, many at once, and a 10,000-device fleet takes a while to
 * analyse: the analysis is shared, and no caller waits for it once there is one to show. A
 * snapshot younger than `maxAgeMs` is answered as it is; one younger than `maxStaleMs` is answered
 * too while its successor is built behind it (one build at a time); an older one, or none, is
 * waited for. Age counts by the wall clock and by the server's clock (which tests move).
 */
export function createFleetIndex(deps: { presence: Presence; clock: FleetClock; maxAgeMs?: number; maxStaleMs?: number; monotonic?: () => number }): FleetIndex {
  const maxAgeMs = deps.maxAgeMs ?? 1000;
  const maxStaleMs = deps.maxStaleMs ?? 5 * maxAgeMs;
  const monotonic = deps.monotonic ?? (() => performance.now());
  const cached = new Map<string, Entry>();

  /**
   * A snapshot's age counts from when its build finished (a 10,000-device build takes a while, and
   * an answer just built is fresh to its callers); `deferred` starts it after the current answers
   * are sent, for a build behind a stale snapshot must not hold up the answer it stands behind.
   */
  const build = (store: Store, tenant: string, deferred: boolean): Entry => {
    const start = deferred ? new Promise<void>((resolve) => setImmediate(resolve)) : Promise.resolve();
    const snapshot = start.then(() => buildSnapshot(store, deps.presence, deps.clock));
    const entry: Entry = { wall: Infinity, server: Infinity, snapshot, settled: false, next: null };
    snapshot.then(
      () => {
        entry.settled = true;
        entry.wall = monotonic();
        entry.server = deps.clock.now();
      },
      // A failed build is not kept: the next request tries again.
      () => {
        if (cached.get(tenant) === entry) cached.delete(tenant);
      },
    );
    return entry;
  };

  return {
    snapshot(store, tenant) {
      const entry = cached.get(tenant);
      const wall = monotonic();
      const server = deps.clock.now();
      // Fresh, or its build still running: share it.
      if (entry && !entry.settled) return entry.snapshot;
      const age = entry ? Math.max(wall - entry.wall, Math.abs(server - entry.server)) : Infinity;
      if (entry && age < maxAgeMs) return entry.snapshot;
      if (entry && age < maxStaleMs) {
        if (!entry.next) {
          const successor = build(store, tenant, true);
          entry.next = successor.snapshot;
          successor.snapshot.then(
            () => {
              if (cached.get(tenant) === entry) cached.set(tenant, successor);
            },
            () => {
              entry.next = null;
            },
          );
        }
        return entry.snapshot;
      }
      const fresh = build(store, tenant, false);
      cached.set(tenant, fresh);
      return fresh.snapshot;
    },
  };
}

async function buildSnapshot(store: Store, presence: Presence, clock: FleetClock): Promise<FleetSnapshot> {
  const builtAt = clock.now();
  const [{ devices, drift }, sites, rollouts, incidents, deploymentRecords] = await Promise.all([
    fleetView(store, presence, clock),
    store.listSites(),
    store.listRollouts(),
    store.listIncidents(),
    store.listDeployments(),
  ]);
  const deployments = await Promise.all(deploymentRecords.map(async (deployment) => ({ deployment, revisions: await store.listRevisions(deployment.name) })));
  const moving = new Set(rollouts.filter((r) => activeRolloutStates.has(r.state)).map((r) => r.deployment));
  const siteRegion = new Map(sites.map((s) => [s.name, s.labels.region ?? null]));
  const driftOf = new Map<string, DriftEntry[]>();
  for (const entry of drift) {
    const list = driftOf.get(entry.device);
    if (list) list.push(entry);
    else driftOf.set(entry.device, [entry]);
  }
  const rows = devices.map((view): FleetRow => {
    const own = driftOf.get(view.name) ?? [];
    return {
      view,
      drift: own,
      state: fleetStateOf(view, own, (d) => moving.has(d)),
      reasons: [...new Set(own.map((e) => e.reason as DriftReason))],
      region: view.labels.region ?? (view.site ? (siteRegion.get(view.site) ?? null) : null),
    };
  });
  return { builtAt, rows, sites, deployments, rollouts, incidents };
}
