import type { DriftEntry, Labels } from '../../protocol/resources.ts';
import { matchesRequirements, type LabelRequirement } from '../../protocol/selectors.ts';
import { activeRolloutStates } from '../rollout/rollout-engine.ts';
import { fleetStates, type FleetRow, type FleetSnapshot, type FleetState } from './fleet-index.ts';

/**
 * What the dashboard asks of a fleet snapshot: pure functions, so filtering, sorting and paging
 * are tested without a server and cost one pass over the rows in memory.
 */

export type StateCounts = Record<FleetState, number>;
const noCounts = (): StateCounts => ({ offline: 0, failed: 0, reverted: 0, updating: 0, 'up-to-date': 0 });

export type FleetFilter = { q?: string; site?: string; selector?: readonly LabelRequirement[]; state?: FleetState; reason?: string };
export type Page = { limit: number; offset: number };

export const deviceSorts = ['name', 'site', 'state', 'lastSeen'] as const;
export type DeviceSort = (typeof deviceSorts)[number];
export const siteSorts = ['name', 'devices', 'region'] as const;
export type SiteSort = (typeof siteSorts)[number];
export type Order = 'asc' | 'desc';

/** Accepted devices count in the states; the others wait for an operator's approval. */
const counted = (row: FleetRow) => row.view.status === 'accepted';

export function overviewOf(snapshot: FleetSnapshot) {
  const states = noCounts();
  const bySite = new Map<string, { region: string | null; devices: number; states: StateCounts }>();
  const byRegion = new Map<string, { devices: number; states: StateCounts }>();
  let pendingApproval = 0;
  for (const row of snapshot.rows) {
    if (!counted(row)) {
      pendingApproval += 1;
      continue;
    }
    states[row.state] += 1;
    const site = row.view.site ?? '—';
    const s = bySite.get(site) ?? { region: row.region, devices: 0, states: noCounts() };
    s.devices += 1;
    s.states[row.state] += 1;
    bySite.set(site, s);
    const region = row.region ?? '—';
    const r = byRegion.get(region) ?? { devices: 0, states: noCounts() };
    r.devices += 1;
    r.states[row.state] += 1;
    byRegion.set(region, r);
  }
  return {
    generatedAt: new Date(snapshot.builtAt).toISOString(),
    devices: snapshot.rows.length - pendingApproval,
    pendingApproval,
    states,
    sites: [...bySite].map(([name, s]) => ({ name, ...s })).sort((a, b) => compareText(a.name, b.name)),
    regions: [...byRegion].map(([name, r]) => ({ name, ...r })).sort((a, b) => compareText(a.name, b.name)),
    deployments: snapshot.deployments.map(({ deployment, revisions }) => ({
      name: deployment.name,
      revision: deployment.revision,
      targetRevision: deployment.targetRevision,
      versions: versionShare(snapshot.rows, deployment.name, revisions),
    })),
    rollouts: snapshot.rollouts.filter((r) => activeRolloutStates.has(r.state)),
    incidents: snapshot.incidents.filter((i) => i.state === 'open'),
  };
}

/** How many devices run each version of a Deployment (newest revision first); devices running none of it are left out. */
function versionShare(rows: readonly FleetRow[], deployment: string, revisions: readonly { revision: number; template: { version: string } }[]) {
  const counts = new Map<string, number>();
  for (const row of rows) {
    if (!counted(row)) continue;
    const versions = new Set(row.view.components.filter((c) => c.deployment === deployment && c.version !== null).map((c) => c.version!));
    for (const v of versions) counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  const revisionOf = new Map<string, number>();
  for (const r of revisions) if (!revisionOf.has(r.template.version) || revisionOf.get(r.template.version)! < r.revision) revisionOf.set(r.template.version, r.revision);
  return [...counts]
    .map(([version, devices]) => ({ version, revision: revisionOf.get(version) ?? null, devices }))
    .sort((a, b) => (b.revision ?? -1) - (a.revision ?? -1) || compareText(a.version, b.version));
}

export function matchesFilter(row: FleetRow, f: FleetFilter): boolean {
  if (f.q && !row.view.name.toLowerCase().includes(f.q.toLowerCase())) return false;
  if (f.site !== undefined && row.view.site !== f.site) return false;
  if (f.state && row.state !== f.state) return false;
  if (f.reason && !row.reasons.includes(f.reason as FleetRow['reasons'][number])) return false;
  if (f.selector && !matchesRequirements(row.view.labels, f.selector)) return false;
  return true;
}

const stateRank = new Map(fleetStates.map((s, i) => [s, i]));
const deviceKey: Record<DeviceSort, (a: FleetRow, b: FleetRow) => number> = {
  name: () => 0,
  site: (a, b) => compareText(a.view.site ?? '', b.view.site ?? ''),
  state: (a, b) => stateRank.get(a.state)! - stateRank.get(b.state)!,
  lastSeen: (a, b) => compareText(a.view.lastSeen ?? '', b.view.lastSeen ?? ''),
};

/** One page of the device table; ties are broken by name so pages never overlap or skip. */
export function devicePage(snapshot: FleetSnapshot, filter: FleetFilter, sort: DeviceSort, order: Order, page: Page) {
  const sign = order === 'desc' ? -1 : 1;
  const byKey = deviceKey[sort];
  const matching = snapshot.rows.filter((row) => matchesFilter(row, filter));
  const sorted = matching.sort((a, b) => sign * (byKey(a, b) || compareText(a.view.name, b.view.name)));
  return {
    total: matching.length,
    offset: page.offset,
    limit: page.limit,
    devices: sorted.slice(page.offset, page.offset + page.limit).map((row) => ({
      name: row.view.name,
      site: row.view.site,
      region: row.region,
      labels: row.view.labels,
      status: row.view.status,
      online: row.view.online,
      lastSeen: row.view.lastSeen,
      state: row.state,
      reasons: row.reasons,
      components: row.view.components.map(({ name, deployment, desiredVersion, version, state, reason }) => ({ name, deployment, desiredVersion, version, state, reason })),
    })),
  };
}

export function sitePage(snapshot: FleetSnapshot, q: string | undefined, sort: SiteSort, order: Order, page: Page) {
  const labels = new Map(snapshot.sites.map((s) => [s.name, s.labels]));
  const sites = new Map<string, { name: string; region: string | null; labels: Record<string, string>; devices: number; online: number; states: StateCounts }>();
  // Sites declared as resources appear even before their first device enrolls.
  for (const s of snapshot.sites) sites.set(s.name, { name: s.name, region: s.labels.region ?? null, labels: s.labels, devices: 0, online: 0, states: noCounts() });
  for (const row of snapshot.rows) {
    if (!row.view.site || !counted(row)) continue;
    const site = sites.get(row.view.site) ?? { name: row.view.site, region: row.region, labels: labels.get(row.view.site) ?? {}, devices: 0, online: 0, states: noCounts() };
    site.devices += 1;
    if (row.view.online) site.online += 1;
    site.states[row.state] += 1;
    site.region ??= row.region;
    sites.set(row.view.site, site);
  }
  const sign = order === 'desc' ? -1 : 1;
  const key: Record<SiteSort, (a: { name: string; region: string | null; devices: number }, b: typeof a) => number> = {
    name: () => 0,
    devices: (a, b) => a.devices - b.devices,
    region: (a, b) => compareText(a.region ?? '', b.region ?? ''),
  };
  const matching = [...sites.values()].filter((s) => !q || s.name.toLowerCase().includes(q.toLowerCase()));
  matching.sort((a, b) => sign * (key[sort](a, b) || compareText(a.name, b.name)));
  return { total: matching.length, offset: page.offset, limit: page.limit, sites: matching.slice(page.offset, page.offset + page.limit) };
}

/** Drift entries whose device passes the filter; `reasons` counts them by reason before paging. */
export function driftPage(entries: readonly DriftEntry[], labelsOf: (device: string) => Labels | undefined, filter: Omit<FleetFilter, 'state'>, page: Page) {
  const matching = entries.filter((e) => {
    if (filter.reason && e.reason !== filter.reason) return false;
    if (filter.site !== undefined && e.site !== filter.site) return false;
    if (filter.q && !e.device.toLowerCase().includes(filter.q.toLowerCase())) return false;
    if (filter.selector) {
      const labels = labelsOf(e.device);
      if (!labels || !matchesRequirements(labels, filter.selector)) return false;
    }
    return true;
  });
  const reasons: Record<string, number> = {};
  for (const e of matching) reasons[e.reason] = (reasons[e.reason] ?? 0) + 1;
  return { total: matching.length, reasons, entries: matching.slice(page.offset, page.offset + page.limit) };
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
