/**
 * The shapes the public HTTP API answers with, as the dashboard reads them. The dashboard uses the
 * API like any other client (it imports nothing from src/), so these mirror the OpenAPI document
 * at /v1/openapi.json and the dashboard contract.
 */

/** A device's one-word state, worst first: offline > failed > reverted > updating > up-to-date. */
export const deviceStates = ['up-to-date', 'updating', 'failed', 'reverted', 'offline'] as const;
export type DeviceState = (typeof deviceStates)[number];
export type StateCounts = Record<DeviceState, number>;

export const rolloutStates = ['pending', 'progressing', 'paused', 'halted', 'rolled-back', 'complete', 'superseded'] as const;
export type RolloutState = (typeof rolloutStates)[number];

/** Known drift reasons; the server may add more, so a reason is typed as a string. */
export const driftReasons = ['offline', 'applying', 'health-check-failed', 'download-failed', 'start-failed', 'waiting-for-window', 'held-by-rollout', 'reverted', 'local-change'] as const;

export type Role = 'viewer' | 'operator' | 'admin';
/** `name` is the token's description, when it has one. */
export type Whoami = { actor: string; name: string | null; role: Role; tenant: string };

export type Wave = { index: number; devices: number; updated: number; failed: number; state: string };

export type RolloutView = {
  name: string;
  deployment: string;
  revision: number;
  state: RolloutState;
  waves: Wave[];
  reason: string | null;
  createdAt: string;
  updatedAt: string;
};

export type TimelineEntry = { at: string; message: string };

/** Where one device stands in a rollout (the slot statuses of the rollout state machine). */
export type RolloutSlotStatus = 'queued' | 'waiting-window' | 'released' | 'updated' | 'failed' | 'excused' | 'reverted' | 'recovered';

export type RolloutDevice = {
  device: string;
  /** 1-based, as people count waves. */
  wave: number;
  status: RolloutSlotStatus | string;
  why: string;
  detail: string | null;
  releasedAt: string | null;
  doneAt: string | null;
};

export type RolloutDetail = RolloutView & {
  fromRevision: number | null;
  timeline: TimelineEntry[];
  /** Per wave that has devices: updated, failed, waiting and offline, counted on the server. */
  progress: { index: number; devices: number; updated: number; failed: number; waiting: number; offline: number }[];
  /** All of them, or only the failed and reverted ones when the page asked `?devices=failed`. */
  devices: RolloutDevice[];
  incident: { id: string; state: string; title: string } | null;
};

export type Incident = {
  id: string;
  rollout: string;
  deployment: string;
  state: 'open' | 'resolved';
  title: string;
  timeline?: TimelineEntry[];
  openedAt: string;
  closedAt: string | null;
};

export type FleetOverview = {
  generatedAt: string;
  devices: number;
  pendingApproval: number;
  states: StateCounts;
  sites: { name: string; region: string | null; devices: number; states: StateCounts }[];
  regions: { name: string; devices: number; states: StateCounts }[];
  deployments: {
    name: string;
    revision: number;
    targetRevision: number;
    versions: { revision: number | null; version: string | null; devices: number }[];
  }[];
  rollouts: RolloutView[];
  incidents: Incident[];
};

export type ComponentView = {
  name: string;
  deployment: string;
  desiredVersion: string | null;
  version: string | null;
  state: string;
  reason: string | null;
  detail?: string | null;
  since?: string | null;
};

export type Labels = Record<string, string>;

export type DeviceRow = {
  name: string;
  site: string | null;
  region: string | null;
  labels: Labels;
  status: string;
  online: boolean;
  lastSeen: string | null;
  state: DeviceState;
  reasons: string[];
  components: ComponentView[];
};

export type DevicePage = { total: number; offset: number; limit: number; devices: DeviceRow[] };

export type SiteRow = { name: string; region: string | null; labels: Labels; devices: number; online: number; states: StateCounts };
export type SitePage = { total: number; offset: number; limit: number; sites: SiteRow[] };

/** GET /v1/sites: the site resources themselves (used here for the site filter's choices). */
export type SiteView = { name: string; labels: Labels; devices: number; createdAt: string };

export type DriftEntry = {
  device: string;
  site: string | null;
  component: string;
  deployment: string;
  desiredVersion: string | null;
  version: string | null;
  reason: string;
  detail: string;
  since: string | null;
};

export type DriftReport = { summary: string; total: number; reasons: Record<string, number>; entries: DriftEntry[] };

export type DeviceEvent = { at: string; type?: string; reason?: string; message?: string; component?: string; [key: string]: unknown };

export type HealthReport = { generation: number; reportedAt: string; components: ComponentView[] };

export type DeviceDetail = {
  name: string;
  site: string | null;
  labels: Labels;
  status: string;
  online: boolean;
  lastSeen: string | null;
  enrolledAt: string;
  facts: Record<string, unknown>;
  generation: number;
  appliedGeneration: number;
  components: ComponentView[];
  drift: DriftEntry[];
  events: DeviceEvent[];
  history: HealthReport[];
};

export type LogLine = { seq: number; at: string; component: string; line: string };
export type LogPage = { logs: LogLine[]; next: number | null; dropped?: number };

export type MetricPoint = { seq: number; at: string; component: string | null; name: string; value: number };

export type AuditEntry = {
  seq: number;
  at: string;
  actor: string;
  role: string;
  action: string;
  target: string | null;
  sourceIp: string | null;
  status: number | string | null;
  error: string | null;
  detail: unknown;
};
export type AuditPage = { entries: AuditEntry[]; next: number | null };
