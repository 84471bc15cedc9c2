import type { DeviceView, DriftEntry, DriftReason } from '../../protocol/resources.ts';
import type { Presence } from '../presence.ts';
import type { DeploymentRecord, IncidentRecord, RevisionRecord, RolloutRecord, SiteRecord, Store } from '../store/store.ts';
import { fleetView, type FleetClock } from './views.ts';

/** One device in a word, worst first: what the overview counts and the device table filters by. */
export const fleetStates = ['offline', 'failed', 'reverted', 'updating', 'up-to-date'] as const;
export type FleetState = (typeof fleetStates)[number];

/** Rollouts still deciding something: their devices count as updating. */
export const activeRolloutStates: ReadonlySet<string> = new Set(['pending', 'progressing', 'paused', 'halted']);

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
  /** The tenant's fleet, at most `maxAgeMs` old: one build serves every request that arrives meanwhile. */
  snapshot(store: Store, tenant: string): Promise<FleetSnapshot>;
};

/**
 * Dashboards poll every few seconds, many at once, and a 10,000-device fleet takes a while to
 * analyse: the analysis is shared. A snapshot is rebuilt when it is older than `maxAgeMs` by the
 * wall clock or by the server's clock (which tests move), and never twice at once.
 */
export function createFleetIndex(deps: { presence: Presence; clock: FleetClock; maxAgeMs?: number; monotonic?: () => number }): FleetIndex {
  const maxAgeMs = deps.maxAgeMs ?? 1000;
  const monotonic = deps.monotonic ?? (() => performance.now());
  const cached = new Map<string, { wall: number; server: number; snapshot: Promise<FleetSnapshot> }>();
  return {
    snapshot(store, tenant) {
      const entry = cached.get(tenant);
      const wall = monotonic();
      const server = deps.clock.now();
      if (entry && wall - entry.wall < maxAgeMs && Math.abs(server - entry.server) < maxAgeMs) return entry.snapshot;
      const snapshot = buildSnapshot(store, deps.presence, deps.clock);
      cached.set(tenant, { wall, server, snapshot });
      // A failed build is not kept: the next request tries again.
      snapshot.catch(() => {
        if (cached.get(tenant)?.snapshot === snapshot) cached.delete(tenant);
      });
      return snapshot;
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
