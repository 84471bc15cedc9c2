import type { Generated } from 'kysely';

/**
 * The tables, as Kysely sees them. JSON travels as TEXT so the same schema runs on SQLite and
 * PostgreSQL; times are ISO 8601 strings (UTC), which sort as they should on both.
 */
export type Database = {
  meta: { key: string; value: string };
  tenants: { name: string; created_at: string };
  api_tokens: {
    tenant: string;
    id: string;
    token_hash: string;
    role: string;
    description: string;
    created_at: string;
    expires_at: string | null;
    revoked_at: string | null;
  };
  enroll_tokens: {
    tenant: string;
    id: string;
    token_hash: string;
    description: string;
    created_at: string;
    expires_at: string | null;
    revoked_at: string | null;
    /** Devices enrolled with it land on this site (null: the device says). */
    site: string | null;
    max_uses: number | null;
    uses: number;
    /** 1: devices are accepted at once; 0: they wait, pending, for an operator. */
    auto_accept: number;
  };
  sites: { tenant: string; name: string; labels: string; spec: string; created_at: string; updated_at: string };
  devices: {
    tenant: string;
    name: string;
    site: string | null;
    labels: string;
    facts: string;
    public_key: string;
    status: string;
    enrolled_at: string;
    last_seen: string | null;
    applied_generation: number;
    /** Telemetry stored up to this sequence number (a resend at or below it is a duplicate). */
    telemetry_seq: number;
    /** Records the device reported dropping from its full outbox, a running total. */
    telemetry_dropped: number;
  };
  deployments: {
    tenant: string;
    name: string;
    labels: string;
    spec: string;
    revision: number;
    target_revision: number;
    created_at: string;
    updated_at: string;
  };
  deployment_revisions: {
    tenant: string;
    deployment: string;
    revision: number;
    template_hash: string;
    template: string;
    created_at: string;
  };
  rollouts: {
    tenant: string;
    name: string;
    deployment: string;
    revision: number;
    state: string;
    reason: string | null;
    waves: string;
    created_at: string;
    updated_at: string;
    from_revision: number | null;
    machine: string | null;
  };
  device_releases: { tenant: string; deployment: string; device: string; revision: number; rollout: string; released_at: string; previous_revision: number | null };
  incidents: {
    tenant: string;
    id: string;
    rollout: string;
    deployment: string;
    state: string;
    title: string;
    timeline: string;
    opened_at: string;
    closed_at: string | null;
  };
  device_desired: { device: string; generation: number; content_hash: string; document: string; issued_at: string };
  device_components: {
    device: string;
    deployment: string;
    component: string;
    desired_version: string | null;
    desired_revision: number | null;
    version: string | null;
    state: string;
    reason: string | null;
    detail: string | null;
    since: string;
    reported_at: string;
  };
  status_history: {
    id: Generated<number>;
    device: string;
    generation: number;
    reported_at: string;
    received_at: string;
    components: string;
  };
  device_events: {
    device: string;
    seq: number;
    at: string;
    type: string;
    component: string | null;
    message: string;
    received_at: string;
  };
  device_logs: { device: string; seq: number; at: string; component: string; line: string };
  artifacts: { tenant: string; sha256: string; name: string; version: string; size: number; signature: string; created_at: string };
  /** `component` is '' for host metrics. */
  device_metrics: { device: string; seq: number; at: string; component: string; name: string; value: number };
  /** One hash chain per tenant; `detail` is canonical JSON. */
  audit_log: {
    tenant: string;
    seq: number;
    at: string;
    actor: string;
    role: string | null;
    action: string;
    target: string | null;
    source_ip: string | null;
    status: number;
    error: string | null;
    detail: string;
    prev_hash: string;
    hash: string;
  };
  /** Each tenant's newest audit entry, written with it. */
  audit_heads: { tenant: string; seq: number; hash: string };
  /** Files all server replicas share (PostgreSQL only), in ordered pieces. */
  file_chunks: { key: string; n: number; data: Uint8Array };
};
