import type { Kysely, Transaction } from 'kysely';
import type { ArtifactRef } from '../../protocol/artifacts.ts';
import type { ComponentStatus, DeviceEvent, Facts, SignedDesiredState, TelemetryRecord } from '../../protocol/messages.ts';
import type { DeploymentSpec, Labels, SiteSpec, Template } from '../../protocol/resources.ts';
import type { AuditEntry, ChainAnchor } from '../../protocol/audit-chain.ts';
import { canonicalJson } from '../../protocol/canonical.ts';
import { isPostgres, retryConflicts } from './postgres.ts';
import type { Database } from './schema.ts';

/** Records as the rest of the server sees them: JSON already parsed, names in the domain's words. */
export type DeviceRecord = {
  name: string;
  site: string | null;
  labels: Labels;
  facts: Facts;
  publicKey: string;
  /** `pending`: enrolled with a token that does not auto-accept, waiting for an operator's `device accept`. */
  status: 'accepted' | 'pending' | 'revoked';
  enrolledAt: string;
  lastSeen: string | null;
  appliedGeneration: number;
  /** The tenant it belongs to: always there when read; on insert, the store view's tenant wins. */
  tenant?: string;
};
export type SiteRecord = { name: string; labels: Labels; spec: SiteSpec; createdAt: string; updatedAt: string };
export type DeploymentRecord = {
  name: string;
  labels: Labels;
  spec: DeploymentSpec;
  /** The newest revision of the template. */
  revision: number;
  /** The revision the rollout engine has released to every selected device. */
  targetRevision: number;
  createdAt: string;
  updatedAt: string;
};
export type RevisionRecord = { deployment: string; revision: number; templateHash: string; template: Template; createdAt: string };
export type RolloutWave = { index: number; devices: number; updated: number; failed: number; state: string };
export type RolloutRecord = {
  name: string;
  deployment: string;
  revision: number;
  /** The revision devices return to on rollback: what was stable when this rollout began. */
  fromRevision: number | null;
  /** The rollout state machine's own state (machine.ts), stored as it is. */
  machine: unknown;
  state: string;
  reason: string | null;
  waves: RolloutWave[];
  createdAt: string;
  updatedAt: string;
};
export type DesiredRecord = { device: string; generation: number; contentHash: string; document: SignedDesiredState; issuedAt: string };
export type ComponentRecord = ComponentStatus & { device: string; reportedAt: string };
export type EventRecord = DeviceEvent & { device: string; receivedAt: string };
export type LogLine = { seq: number; at: string; component: string; line: string };
/** `component` is null for a host metric. */
export type MetricPoint = { seq: number; at: string; component: string | null; name: string; value: number };
export type TelemetryMark = { seq: number; dropped: number };
export type ReleaseRecord = {
  deployment: string;
  device: string;
  revision: number;
  rollout: string;
  releasedAt: string;
  /** The revision a rollout had released to the device before this one (none: the stable revision). */
  previousRevision?: number | null;
};
export type IncidentRecord = {
  id: string;
  rollout: string;
  deployment: string;
  state: 'open' | 'resolved';
  title: string;
  timeline: { at: string; message: string }[];
  openedAt: string;
  closedAt: string | null;
};
/** An uploaded artifact: what it claims to be and the server's signature over that claim. */
export type ArtifactRecord = ArtifactRef & { createdAt: string };
export type TokenRecord = {
  id: string;
  role: string;
  description: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  /** The tenant whose fleet the token reaches; on insert, the store view's tenant wins ('default' in the server-wide view). */
  tenant?: string;
};
/** An enrollment token: joins devices to one tenant (and optionally one site), a limited number of times. */
export type EnrollTokenRecord = Omit<TokenRecord, 'role'> & {
  /** Devices that enrol with it land on this site (null: the device names its own). */
  site?: string | null;
  /** How many devices may enrol with it (null: no limit). */
  maxUses?: number | null;
  uses?: number;
  /** Devices are accepted at once; otherwise they wait, pending, for an operator. */
  autoAccept?: boolean;
};
export type TenantRecord = { name: string; createdAt: string };

/**
 * The one store interface. Every method runs in the caller's transaction when called on the store
 * that `transaction()` hands out, so a multi-step change commits whole or not at all.
 */
export type Store = {
  transaction<T>(work: (store: Store) => Promise<T>): Promise<T>;

  /**
   * Tenancy. `createSqlStore` gives the server-wide view (`tenant` null: the server's own machinery,
   * which walks tenants itself); `forTenant(t)` gives a view confined to one tenant, which is what
   * every API route works on: its reads see only that tenant's rows (another tenant's resource reads
   * as absent), its writes land in that tenant. Names of sites, deployments, rollouts, incidents and
   * artifacts are unique per tenant; device names are unique server-wide. Lookups by a secret's hash
   * (tokens) and writes keyed by a device name (status, telemetry, presence, desired state) are not
   * confined: their caller already holds the device or the secret.
   */
  readonly tenant: string | null;
  forTenant(tenant: string): Store;
  getTenant(name: string): Promise<TenantRecord | null>;
  listTenants(): Promise<TenantRecord[]>;
  insertTenant(tenant: TenantRecord): Promise<void>;
  /** The tenant a device belongs to, wherever it is (device names are unique server-wide). */
  deviceTenant(name: string): Promise<string | null>;

  getMeta(key: string): Promise<string | null>;
  setMeta(key: string, value: string): Promise<void>;

  /** Any tenant's token, by the hash of its secret (the answer carries its tenant). */
  findApiToken(tokenHash: string): Promise<TokenRecord | null>;
  countApiTokens(): Promise<number>;
  insertApiToken(token: TokenRecord & { tokenHash: string }): Promise<void>;
  listApiTokens(): Promise<TokenRecord[]>;
  /** Marks a token revoked; false when there is no such token (in this view). */
  revokeApiToken(id: string, atIso: string): Promise<boolean>;
  /** Any tenant's enrollment token, by the hash of its secret (the answer carries its tenant). */
  findEnrollToken(tokenHash: string): Promise<(TokenRecord & EnrollTokenRecord) | null>;
  insertEnrollToken(token: EnrollTokenRecord & { tokenHash: string }): Promise<void>;
  listEnrollTokens(): Promise<(TokenRecord & EnrollTokenRecord)[]>;
  revokeEnrollToken(id: string, atIso: string): Promise<boolean>;
  /** Takes one use of an enrollment token; false when its uses are used up. */
  useEnrollToken(id: string): Promise<boolean>;
  /** Names of the devices that are not accepted (pending or revoked), for the in-memory refusal of their sessions. */
  listUnacceptedDevices(): Promise<{ name: string; status: DeviceRecord['status'] }[]>;

  getDevice(name: string): Promise<DeviceRecord | null>;
  listDevices(): Promise<DeviceRecord[]>;
  insertDevice(device: DeviceRecord): Promise<void>;
  updateDevice(name: string, change: Partial<Pick<DeviceRecord, 'site' | 'labels' | 'facts' | 'status' | 'appliedGeneration'>>): Promise<void>;
  /** Many devices' last contact in one statement batch: presence is written in group commits, not per poll. */
  recordLastSeen(seen: ReadonlyMap<string, string>): Promise<void>;

  getSite(name: string): Promise<SiteRecord | null>;
  listSites(): Promise<SiteRecord[]>;
  putSite(site: SiteRecord): Promise<void>;

  getDeployment(name: string): Promise<DeploymentRecord | null>;
  listDeployments(): Promise<DeploymentRecord[]>;
  putDeployment(deployment: DeploymentRecord): Promise<void>;
  insertRevision(revision: RevisionRecord): Promise<void>;
  getRevision(deployment: string, revision: number): Promise<RevisionRecord | null>;
  listRevisions(deployment: string): Promise<RevisionRecord[]>;

  getRollout(name: string): Promise<RolloutRecord | null>;
  listRollouts(deployment?: string): Promise<RolloutRecord[]>;
  putRollout(rollout: RolloutRecord): Promise<void>;

  /** Which devices the rollout engine has given a revision other than the Deployment's stable one. */
  listReleases(deployment?: string): Promise<ReleaseRecord[]>;
  putReleases(releases: readonly ReleaseRecord[]): Promise<void>;
  deleteReleases(deployment: string, devices?: readonly string[]): Promise<void>;

  getIncident(id: string): Promise<IncidentRecord | null>;
  listIncidents(rollout?: string): Promise<IncidentRecord[]>;
  putIncident(incident: IncidentRecord): Promise<void>;

  getDesired(device: string): Promise<DesiredRecord | null>;
  listDesired(): Promise<DesiredRecord[]>;
  /** Each device's current generation, without its document: what another server replica compares its cache with. */
  listDesiredGenerations(): Promise<{ device: string; generation: number }[]>;
  putDesired(record: DesiredRecord): Promise<void>;

  listComponents(device?: string): Promise<ComponentRecord[]>;
  /** Replaces a device's reported components with this report's, keeps the report in history. */
  recordStatus(device: string, generation: number, reportedAt: string, receivedAt: string, components: ComponentStatus[]): Promise<void>;
  /** Stores events not seen before (by device and sequence number) and returns how many were new. */
  recordEvents(device: string, receivedAt: string, events: DeviceEvent[]): Promise<number>;
  listEvents(device: string, limit: number): Promise<EventRecord[]>;
  listStatusHistory(device: string, limit: number): Promise<{ generation: number; reportedAt: string; components: ComponentStatus[] }[]>;

  /**
   * Stores the records numbered above the device's telemetry mark (lower ones were stored by an
   * earlier delivery of the same batch) and moves the mark; returns the new mark.
   */
  recordTelemetry(device: string, receivedAt: string, records: readonly TelemetryRecord[], dropped: number): Promise<TelemetryMark>;
  getTelemetryMark(device: string): Promise<TelemetryMark | null>;
  /** Records every device reported dropping, added up. */
  sumTelemetryDropped(): Promise<number>;
  /** Output lines in sequence order: the first `limit` after `after`, or with `newest` the last `limit`. */
  listLogs(device: string, query: { component?: string; after?: number; limit: number; newest?: boolean }): Promise<LogLine[]>;
  /** The newest metric points first. */
  listMetrics(device: string, query: { name?: string; component?: string; since?: string; limit: number }): Promise<MetricPoint[]>;
  /** Forgets telemetry older than the cutoffs (retention). */
  pruneTelemetry(cutoff: { logsBefore: string; metricsBefore: string }): Promise<void>;

  getArtifact(sha256: string): Promise<ArtifactRecord | null>;
  /** Newest first. */
  listArtifacts(): Promise<ArtifactRecord[]>;
  /** Records an artifact; one already recorded with the same digest is left as it is. */
  putArtifact(artifact: ArtifactRecord): Promise<void>;
  /** Replaces an artifact's signature (after the server's signing key was rotated). */
  setArtifactSignature(sha256: string, signature: string): Promise<void>;

  /** Appends an entry to its tenant's audit chain and moves the chain head to it (audit-log.ts is the one writer). Any view: the entry names its tenant. */
  appendAudit(entry: AuditEntry): Promise<void>;
  /** A tenant's audit chain head and its highest entry number (they differ only when rows were changed by hand). */
  getAuditAnchor(tenant: string): Promise<ChainAnchor>;
  /** A tenant's audit entries in chain order, after `after`, at most `limit`. */
  listAudit(tenant: string, query: AuditQuery): Promise<AuditEntry[]>;
};
/** Filters on the audit trail; each is optional, all must hold. */
export type AuditQuery = {
  after?: number;
  through?: number;
  since?: string;
  until?: string;
  actor?: string;
  action?: string;
  actionPrefix?: string;
  minStatus?: number;
  maxStatus?: number;
  statuses?: number[];
  error?: string;
  limit: number;
};

const json = (value: unknown) => JSON.stringify(value);
function* slices<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}
const parse = <T>(text: string): T => JSON.parse(text) as T;

type Db = Kysely<Database> | Transaction<Database>;

/** The server-wide view; `forTenant` confines it to one tenant. */
export function createSqlStore(db: Kysely<Database>): Store {
  return storeOn(db, db, null);
}

/** A transaction of the store: on PostgreSQL serializable, run again when the database aborts it for a conflict (postgres.ts). */
function runTransaction<T>(root: Kysely<Database>, work: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  if (!isPostgres(root)) return root.transaction().execute(work);
  return retryConflicts(() => root.transaction().setIsolationLevel('serializable').execute(work));
}

function storeOn(root: Kysely<Database>, db: Db, tenant: string | null): Store {
  const confined = tenant !== null;
  /** Where a write lands: this view's tenant; in the server-wide view, the record's or 'default'. */
  const home = (given?: string) => tenant ?? given ?? 'default';
  /** This tenant's device names, for confining the tables keyed by device. */
  const tenantDevices = () => db.selectFrom('devices').select('name').where('tenant', '=', tenant!);
  const store: Store = {
    async transaction(work) {
      if (db.isTransaction) return work(store);
      return runTransaction(root, (trx) => work(storeOn(root, trx, tenant)));
    },

    tenant,
    forTenant(name) {
      return storeOn(root, db, name);
    },
    async getTenant(name) {
      if (confined && name !== tenant) return null;
      const row = await db.selectFrom('tenants').selectAll().where('name', '=', name).executeTakeFirst();
      return row ? { name: row.name, createdAt: row.created_at } : null;
    },
    async listTenants() {
      const rows = await db.selectFrom('tenants').selectAll().$if(confined, (q) => q.where('name', '=', tenant!)).orderBy('name').execute();
      return rows.map((row) => ({ name: row.name, createdAt: row.created_at }));
    },
    async insertTenant(t) {
      await db.insertInto('tenants').values({ name: t.name, created_at: t.createdAt }).execute();
    },
    async deviceTenant(name) {
      const row = await db.selectFrom('devices').select('tenant').where('name', '=', name).executeTakeFirst();
      return row?.tenant ?? null;
    },

    async getMeta(key) {
      const row = await db.selectFrom('meta').select('value').where('key', '=', key).executeTakeFirst();
      return row?.value ?? null;
    },
    async setMeta(key, value) {
      await db.insertInto('meta').values({ key, value }).onConflict((oc) => oc.column('key').doUpdateSet({ value })).execute();
    },

    async findApiToken(tokenHash) {
      const row = await db.selectFrom('api_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
      return row ? tokenFromRow(row) : null;
    },
    async countApiTokens() {
      const row = await db
        .selectFrom('api_tokens')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .$if(confined, (q) => q.where('tenant', '=', tenant!))
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
    async insertApiToken(t) {
      await db
        .insertInto('api_tokens')
        .values({ tenant: home(t.tenant), id: t.id, token_hash: t.tokenHash, role: t.role, description: t.description, created_at: t.createdAt, expires_at: t.expiresAt, revoked_at: t.revokedAt })
        .execute();
    },
    async listApiTokens() {
      const rows = await db.selectFrom('api_tokens').selectAll().$if(confined, (q) => q.where('tenant', '=', tenant!)).orderBy('created_at').orderBy('id').execute();
      return rows.map(tokenFromRow);
    },
    async revokeApiToken(id, atIso) {
      const found = await db.selectFrom('api_tokens').select(['id', 'revoked_at']).where('id', '=', id).$if(confined, (q) => q.where('tenant', '=', tenant!)).executeTakeFirst();
      if (!found) return false;
      if (!found.revoked_at) await db.updateTable('api_tokens').set({ revoked_at: atIso }).where('id', '=', id).execute();
      return true;
    },
    async findEnrollToken(tokenHash) {
      const row = await db.selectFrom('enroll_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
      return row ? enrollTokenFromRow(row) : null;
    },
    async insertEnrollToken(t) {
      await db
        .insertInto('enroll_tokens')
        .values({
          tenant: home(t.tenant),
          id: t.id,
          token_hash: t.tokenHash,
          description: t.description,
          created_at: t.createdAt,
          expires_at: t.expiresAt,
          revoked_at: t.revokedAt,
          site: t.site ?? null,
          max_uses: t.maxUses ?? null,
          uses: t.uses ?? 0,
          auto_accept: t.autoAccept === false ? 0 : 1,
        })
        .execute();
    },
    async listEnrollTokens() {
      const rows = await db.selectFrom('enroll_tokens').selectAll().$if(confined, (q) => q.where('tenant', '=', tenant!)).orderBy('created_at').orderBy('id').execute();
      return rows.map(enrollTokenFromRow);
    },
    async revokeEnrollToken(id, atIso) {
      const found = await db.selectFrom('enroll_tokens').select(['id', 'revoked_at']).where('id', '=', id).$if(confined, (q) => q.where('tenant', '=', tenant!)).executeTakeFirst();
      if (!found) return false;
      if (!found.revoked_at) await db.updateTable('enroll_tokens').set({ revoked_at: atIso }).where('id', '=', id).execute();
      return true;
    },
    async useEnrollToken(id) {
      // One statement: two devices racing for the last use cannot both get it.
      const result = await db
        .updateTable('enroll_tokens')
        .set((eb) => ({ uses: eb('uses', '+', 1) }))
        .where('id', '=', id)
        .where((eb) => eb.or([eb('max_uses', 'is', null), eb('uses', '<', eb.ref('max_uses'))]))
        .$if(confined, (q) => q.where('tenant', '=', tenant!))
        .executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    },
    async listUnacceptedDevices() {
      const rows = await db.selectFrom('devices').select(['name', 'status']).where('status', '!=', 'accepted').$if(confined, (q) => q.where('tenant', '=', tenant!)).execute();
      return rows.map((r) => ({ name: r.name, status: r.status as DeviceRecord['status'] }));
    },

    async getDevice(name) {
      const row = await db.selectFrom('devices').selectAll().where('name', '=', name).$if(confined, (q) => q.where('tenant', '=', tenant!)).executeTakeFirst();
      return row ? deviceFromRow(row) : null;
    },
    async listDevices() {
      const rows = await db.selectFrom('devices').selectAll().$if(confined, (q) => q.where('tenant', '=', tenant!)).orderBy('name').execute();
      return rows.map(deviceFromRow);
    },
    async insertDevice(d) {
      await db
        .insertInto('devices')
        .values({
          tenant: home(),
          name: d.name,
          site: d.site,
          labels: json(d.labels),
          facts: json(d.facts),
          public_key: d.publicKey,
          status: d.status,
          enrolled_at: d.enrolledAt,
          last_seen: d.lastSeen,
          applied_generation: d.appliedGeneration,
          telemetry_seq: 0,
          telemetry_dropped: 0,
        })
        .execute();
    },
    async updateDevice(name, change) {
      const set: Partial<Database['devices']> = {};
      if (change.site !== undefined) set.site = change.site;
      if (change.labels !== undefined) set.labels = json(change.labels);
      if (change.facts !== undefined) set.facts = json(change.facts);
      if (change.status !== undefined) set.status = change.status;
      if (change.appliedGeneration !== undefined) set.applied_generation = change.appliedGeneration;
      if (Object.keys(set).length > 0) await db.updateTable('devices').set(set).where('name', '=', name).$if(confined, (q) => q.where('tenant', '=', tenant!)).execute();
    },
    async recordLastSeen(seen) {
      for (const [name, at] of seen) {
        await db.updateTable('devices').set({ last_seen: at }).where('name', '=', name).where((eb) => eb.or([eb('last_seen', 'is', null), eb('last_seen', '<', at)])).execute();
      }
    },

    async getSite(name) {
      const row = await db.selectFrom('sites').selectAll().where('tenant', '=', home()).where('name', '=', name).executeTakeFirst();
      return row ? siteFromRow(row) : null;
    },
    async listSites() {
      return (await db.selectFrom('sites').selectAll().$if(confined, (q) => q.where('tenant', '=', tenant!)).orderBy('name').execute()).map(siteFromRow);
    },
    async putSite(s) {
      const values = { tenant: home(), name: s.name, labels: json(s.labels), spec: json(s.spec), created_at: s.createdAt, updated_at: s.updatedAt };
      await db.insertInto('sites').values(values).onConflict((oc) => oc.columns(['tenant', 'name']).doUpdateSet({ labels: values.labels, spec: values.spec, updated_at: values.updated_at })).execute();
    },

    async getDeployment(name) {
      const row = await db.selectFrom('deployments').selectAll().where('tenant', '=', home()).where('name', '=', name).executeTakeFirst();
      return row ? deploymentFromRow(row) : null;
    },
    async listDeployments() {
      return (await db.selectFrom('deployments').selectAll().$if(confined, (q) => q.where('tenant', '=', tenant!)).orderBy('name').execute()).map(deploymentFromRow);
    },
    async putDeployment(d) {
      const values = {
        tenant: home(),
        name: d.name,
        labels: json(d.labels),
        spec: json(d.spec),
        revision: d.revision,
        target_revision: d.targetRevision,
        created_at: d.createdAt,
        updated_at: d.updatedAt,
      };
      const { tenant: _tenant, name: _name, created_at: _created, ...update } = values;
      await db.insertInto('deployments').values(values).onConflict((oc) => oc.columns(['tenant', 'name']).doUpdateSet(update)).execute();
    },
    async insertRevision(r) {
      await db
        .insertInto('deployment_revisions')
        .values({ tenant: home(), deployment: r.deployment, revision: r.revision, template_hash: r.templateHash, template: json(r.template), created_at: r.createdAt })
        .execute();
    },
    async getRevision(deployment, revision) {
      const row = await db.selectFrom('deployment_revisions').selectAll().where('tenant', '=', home()).where('deployment', '=', deployment).where('revision', '=', revision).executeTakeFirst();
      return row ? revisionFromRow(row) : null;
    },
    async listRevisions(deployment) {
      const rows = await db.selectFrom('deployment_revisions').selectAll().where('tenant', '=', home()).where('deployment', '=', deployment).orderBy('revision').execute();
      return rows.map(revisionFromRow);
    },

    async getRollout(name) {
      const row = await db.selectFrom('rollouts').selectAll().where('tenant', '=', home()).where('name', '=', name).executeTakeFirst();
      return row ? rolloutFromRow(row) : null;
    },
    async listRollouts(deployment) {
      let query = db.selectFrom('rollouts').selectAll().$if(confined, (q) => q.where('tenant', '=', tenant!));
      if (deployment) query = query.where('deployment', '=', deployment);
      return (await query.orderBy('created_at').orderBy('name').execute()).map(rolloutFromRow);
    },
    async putRollout(r) {
      const values = {
        tenant: home(),
        name: r.name,
        deployment: r.deployment,
        revision: r.revision,
        state: r.state,
        reason: r.reason,
        waves: json(r.waves),
        created_at: r.createdAt,
        updated_at: r.updatedAt,
        from_revision: r.fromRevision,
        machine: r.machine === null || r.machine === undefined ? null : json(r.machine),
      };
      await db
        .insertInto('rollouts')
        .values(values)
        .onConflict((oc) => oc.columns(['tenant', 'name']).doUpdateSet({ state: values.state, reason: values.reason, waves: values.waves, updated_at: values.updated_at, machine: values.machine }))
        .execute();
    },

    async listReleases(deployment) {
      let query = db.selectFrom('device_releases').selectAll().$if(confined, (q) => q.where('tenant', '=', tenant!));
      if (deployment) query = query.where('deployment', '=', deployment);
      const rows = await query.orderBy('deployment').orderBy('device').execute();
      return rows.map((r) => ({ deployment: r.deployment, device: r.device, revision: Number(r.revision), rollout: r.rollout, releasedAt: r.released_at, previousRevision: r.previous_revision === null ? null : Number(r.previous_revision) }));
    },
    async putReleases(releases) {
      // In chunks: SQLite limits the number of bound parameters in one statement.
      for (let i = 0; i < releases.length; i += 500) {
        const values = releases.slice(i, i + 500).map((r) => ({ tenant: home(), deployment: r.deployment, device: r.device, revision: r.revision, rollout: r.rollout, released_at: r.releasedAt, previous_revision: r.previousRevision ?? null }));
        await db
          .insertInto('device_releases')
          .values(values)
          .onConflict((oc) =>
            oc.columns(['deployment', 'device']).doUpdateSet((eb) => ({ revision: eb.ref('excluded.revision'), rollout: eb.ref('excluded.rollout'), released_at: eb.ref('excluded.released_at'), previous_revision: eb.ref('excluded.previous_revision') })),
          )
          .execute();
      }
    },
    async deleteReleases(deployment, devices) {
      if (!devices) {
        await db.deleteFrom('device_releases').where('deployment', '=', deployment).$if(confined, (q) => q.where('tenant', '=', tenant!)).execute();
        return;
      }
      for (let i = 0; i < devices.length; i += 500) {
        await db
          .deleteFrom('device_releases')
          .where('deployment', '=', deployment)
          .where('device', 'in', devices.slice(i, i + 500))
          .$if(confined, (q) => q.where('tenant', '=', tenant!))
          .execute();
      }
    },

    async getIncident(id) {
      const row = await db.selectFrom('incidents').selectAll().where('tenant', '=', home()).where('id', '=', id).executeTakeFirst();
      return row ? incidentFromRow(row) : null;
    },
    async listIncidents(rollout) {
      let query = db.selectFrom('incidents').selectAll().$if(confined, (q) => q.where('tenant', '=', tenant!));
      if (rollout) query = query.where('rollout', '=', rollout);
      return (await query.orderBy('opened_at').execute()).map(incidentFromRow);
    },
    async putIncident(i) {
      const values = { tenant: home(), id: i.id, rollout: i.rollout, deployment: i.deployment, state: i.state, title: i.title, timeline: json(i.timeline), opened_at: i.openedAt, closed_at: i.closedAt };
      await db
        .insertInto('incidents')
        .values(values)
        .onConflict((oc) => oc.columns(['tenant', 'id']).doUpdateSet({ state: values.state, title: values.title, timeline: values.timeline, closed_at: values.closed_at }))
        .execute();
    },

    async getDesired(device) {
      const row = await db.selectFrom('device_desired').selectAll().where('device', '=', device).$if(confined, (q) => q.where('device', 'in', tenantDevices())).executeTakeFirst();
      return row ? desiredFromRow(row) : null;
    },
    async listDesired() {
      return (await db.selectFrom('device_desired').selectAll().$if(confined, (q) => q.where('device', 'in', tenantDevices())).execute()).map(desiredFromRow);
    },
    async listDesiredGenerations() {
      const rows = await db.selectFrom('device_desired').select(['device', 'generation']).$if(confined, (q) => q.where('device', 'in', tenantDevices())).execute();
      return rows.map((r) => ({ device: r.device, generation: Number(r.generation) }));
    },
    async putDesired(r) {
      const values = { device: r.device, generation: r.generation, content_hash: r.contentHash, document: json(r.document), issued_at: r.issuedAt };
      await db
        .insertInto('device_desired')
        .values(values)
        .onConflict((oc) => oc.column('device').doUpdateSet({ generation: values.generation, content_hash: values.content_hash, document: values.document, issued_at: values.issued_at }))
        .execute();
    },

    async listComponents(device) {
      let query = db.selectFrom('device_components').selectAll().$if(confined, (q) => q.where('device', 'in', tenantDevices()));
      if (device) query = query.where('device', '=', device);
      const rows = await query.orderBy('device').orderBy('deployment').orderBy('component').execute();
      return rows.map((row) => ({
        device: row.device,
        deployment: row.deployment,
        name: row.component,
        desiredVersion: row.desired_version,
        ...(row.desired_revision === null ? {} : { desiredRevision: Number(row.desired_revision) }),
        version: row.version,
        state: row.state as ComponentStatus['state'],
        reason: row.reason,
        detail: row.detail,
        since: row.since,
        reportedAt: row.reported_at,
      }));
    },
    async recordStatus(device, generation, reportedAt, receivedAt, components) {
      await db.deleteFrom('device_components').where('device', '=', device).execute();
      if (components.length > 0) {
        await db
          .insertInto('device_components')
          .values(
            components.map((c) => ({
              device,
              deployment: c.deployment,
              component: c.name,
              desired_version: c.desiredVersion,
              desired_revision: c.desiredRevision ?? null,
              version: c.version,
              state: c.state,
              reason: c.reason,
              detail: c.detail,
              since: c.since,
              reported_at: reportedAt,
            })),
          )
          .execute();
      }
      await db.insertInto('status_history').values({ device, generation, reported_at: reportedAt, received_at: receivedAt, components: json(components) }).execute();
      await db.updateTable('devices').set({ applied_generation: generation }).where('name', '=', device).execute();
    },
    async recordEvents(device, receivedAt, events) {
      let added = 0;
      for (const e of events) {
        const result = await db
          .insertInto('device_events')
          .values({ device, seq: e.seq, at: e.at, type: e.type, component: e.component ?? null, message: e.message, received_at: receivedAt })
          .onConflict((oc) => oc.columns(['device', 'seq']).doNothing())
          .executeTakeFirst();
        added += Number(result.numInsertedOrUpdatedRows ?? 0);
      }
      return added;
    },
    async recordTelemetry(device, receivedAt, records, dropped) {
      const row = await db.selectFrom('devices').select(['telemetry_seq', 'telemetry_dropped']).where('name', '=', device).executeTakeFirstOrThrow();
      const fresh = records.filter((r) => r.seq > row.telemetry_seq).sort((a, b) => a.seq - b.seq);
      const logs: Database['device_logs'][] = [];
      const metrics: Database['device_metrics'][] = [];
      const events: DeviceEvent[] = [];
      for (const r of fresh) {
        if (r.kind === 'log') logs.push({ device, seq: r.seq, at: r.at, component: r.component, line: r.line });
        else if (r.kind === 'metric') metrics.push({ device, seq: r.seq, at: r.at, component: r.component ?? '', name: r.name, value: r.value });
        else events.push({ seq: r.seq, at: r.at, type: r.type, ...(r.component === undefined ? {} : { component: r.component }), message: r.message });
      }
      // Multi-row inserts: a batch of thousands of lines costs a few statements, not thousands.
      for (const rows of slices(logs, 400)) await db.insertInto('device_logs').values(rows).execute();
      for (const rows of slices(metrics, 400)) await db.insertInto('device_metrics').values(rows).execute();
      if (events.length > 0) await store.recordEvents(device, receivedAt, events);
      const mark = { seq: Math.max(row.telemetry_seq, fresh.at(-1)?.seq ?? 0), dropped: Math.max(row.telemetry_dropped, dropped) };
      if (mark.seq !== row.telemetry_seq || mark.dropped !== row.telemetry_dropped) {
        await db.updateTable('devices').set({ telemetry_seq: mark.seq, telemetry_dropped: mark.dropped }).where('name', '=', device).execute();
      }
      return mark;
    },
    async getTelemetryMark(device) {
      const row = await db.selectFrom('devices').select(['telemetry_seq', 'telemetry_dropped']).where('name', '=', device).$if(confined, (q) => q.where('tenant', '=', tenant!)).executeTakeFirst();
      return row ? { seq: row.telemetry_seq, dropped: row.telemetry_dropped } : null;
    },
    async sumTelemetryDropped() {
      const row = await db
        .selectFrom('devices')
        .select((eb) => eb.fn.sum<number>('telemetry_dropped').as('dropped'))
        .$if(confined, (q) => q.where('tenant', '=', tenant!))
        .executeTakeFirst();
      return Number(row?.dropped ?? 0);
    },
    async listLogs(device, query) {
      let q = db.selectFrom('device_logs').select(['seq', 'at', 'component', 'line']).where('device', '=', device).$if(confined, (qb) => qb.where('device', 'in', tenantDevices()));
      if (query.component !== undefined) q = q.where('component', '=', query.component);
      if (query.after !== undefined) q = q.where('seq', '>', query.after);
      if (query.newest) return (await q.orderBy('seq', 'desc').limit(query.limit).execute()).reverse();
      return q.orderBy('seq').limit(query.limit).execute();
    },
    async listMetrics(device, query) {
      let q = db.selectFrom('device_metrics').select(['seq', 'at', 'component', 'name', 'value']).where('device', '=', device).$if(confined, (qb) => qb.where('device', 'in', tenantDevices()));
      if (query.name !== undefined) q = q.where('name', '=', query.name);
      if (query.component !== undefined) q = q.where('component', '=', query.component);
      if (query.since !== undefined) q = q.where('at', '>=', query.since);
      const rows = await q.orderBy('seq', 'desc').limit(query.limit).execute();
      return rows.map((r) => ({ ...r, component: r.component === '' ? null : r.component }));
    },
    async pruneTelemetry(cutoff) {
      await db.deleteFrom('device_logs').where('at', '<', cutoff.logsBefore).execute();
      await db.deleteFrom('device_metrics').where('at', '<', cutoff.metricsBefore).execute();
    },

    async getArtifact(sha256) {
      // A digest names bytes, not a choice of a tenant's: the server-wide view finds them in any tenant.
      const row = await db.selectFrom('artifacts').selectAll().where('sha256', '=', sha256).$if(confined, (q) => q.where('tenant', '=', tenant!)).executeTakeFirst();
      return row ? artifactFromRow(row) : null;
    },
    async listArtifacts() {
      return (await db.selectFrom('artifacts').selectAll().$if(confined, (q) => q.where('tenant', '=', tenant!)).orderBy('created_at', 'desc').orderBy('name').execute()).map(artifactFromRow);
    },
    async putArtifact(a) {
      await db
        .insertInto('artifacts')
        .values({ tenant: home(), sha256: a.sha256, name: a.name, version: a.version, size: a.size, signature: a.signature, created_at: a.createdAt })
        .onConflict((oc) => oc.columns(['tenant', 'sha256']).doNothing())
        .execute();
    },

    async appendAudit(e) {
      await db
        .insertInto('audit_log')
        .values({
          tenant: e.tenant,
          seq: e.seq,
          at: e.at,
          actor: e.actor,
          role: e.role,
          action: e.action,
          target: e.target,
          source_ip: e.sourceIp,
          status: e.status,
          error: e.error,
          detail: canonicalJson(e.detail),
          prev_hash: e.prevHash,
          hash: e.hash,
        })
        .execute();
      await db
        .insertInto('audit_heads')
        .values({ tenant: e.tenant, seq: e.seq, hash: e.hash })
        .onConflict((oc) => oc.column('tenant').doUpdateSet({ seq: e.seq, hash: e.hash }))
        .execute();
    },
    async getAuditAnchor(tenant) {
      const head = await db.selectFrom('audit_heads').select(['seq', 'hash']).where('tenant', '=', tenant).executeTakeFirst();
      const last = await db.selectFrom('audit_log').select((eb) => eb.fn.max<number | null>('seq').as('seq')).where('tenant', '=', tenant).executeTakeFirst();
      return { head: head ? { seq: Number(head.seq), hash: head.hash } : null, lastSeq: Number(last?.seq ?? 0) };
    },
    async listAudit(tenant, q) {
      let query = db.selectFrom('audit_log').selectAll().where('tenant', '=', tenant);
      if (q.after !== undefined) query = query.where('seq', '>', q.after);
      if (q.through !== undefined) query = query.where('seq', '<=', q.through);
      if (q.since !== undefined) query = query.where('at', '>=', q.since);
      if (q.until !== undefined) query = query.where('at', '<', q.until);
      if (q.actor !== undefined) query = query.where('actor', '=', q.actor);
      if (q.action !== undefined) query = query.where('action', '=', q.action);
      if (q.actionPrefix !== undefined) {
        const prefix = q.actionPrefix;
        query = query.where((eb) => eb(eb.fn<string>('substr', ['action', eb.val(1), eb.val(prefix.length)]), '=', prefix));
      }
      if (q.minStatus !== undefined) query = query.where('status', '>=', q.minStatus);
      if (q.maxStatus !== undefined) query = query.where('status', '<=', q.maxStatus);
      if (q.statuses !== undefined) query = query.where('status', 'in', q.statuses.length > 0 ? q.statuses : [-1]);
      if (q.error !== undefined) query = query.where('error', '=', q.error);
      return (await query.orderBy('seq').limit(q.limit).execute()).map(auditFromRow);
    },

    async setArtifactSignature(sha256, signature) {
      await db.updateTable('artifacts').set({ signature }).where('tenant', '=', home()).where('sha256', '=', sha256).execute();
    },

    async listEvents(device, limit) {
      const rows = await db
        .selectFrom('device_events')
        .selectAll()
        .where('device', '=', device)
        .$if(confined, (q) => q.where('device', 'in', tenantDevices()))
        .orderBy('seq', 'desc').limit(limit).execute();
      return rows.map((row) => ({
        device: row.device,
        seq: row.seq,
        at: row.at,
        type: row.type as DeviceEvent['type'],
        ...(row.component ? { component: row.component } : {}),
        message: row.message,
        receivedAt: row.received_at,
      }));
    },
    async listStatusHistory(device, limit) {
      const rows = await db
        .selectFrom('status_history')
        .selectAll()
        .where('device', '=', device)
        .$if(confined, (q) => q.where('device', 'in', tenantDevices()))
        .orderBy('id', 'desc').limit(limit).execute();
      return rows.map((row) => ({ generation: row.generation, reportedAt: row.reported_at, components: parse<ComponentStatus[]>(row.components) }));
    },
  };
  return store;
}

function tokenFromRow(row: Database['api_tokens']): TokenRecord {
  return { id: row.id, role: row.role, description: row.description, createdAt: row.created_at, expiresAt: row.expires_at, revokedAt: row.revoked_at, tenant: row.tenant };
}
function enrollTokenFromRow(row: Database['enroll_tokens']): TokenRecord & EnrollTokenRecord {
  return {
    ...tokenFromRow({ ...row, role: 'enroll' }),
    site: row.site,
    maxUses: row.max_uses === null ? null : Number(row.max_uses),
    uses: Number(row.uses),
    autoAccept: Number(row.auto_accept) === 1,
  };
}
function deviceFromRow(row: Database['devices']): DeviceRecord {
  return {
    name: row.name,
    site: row.site,
    labels: parse(row.labels),
    facts: parse(row.facts),
    publicKey: row.public_key,
    status: row.status as DeviceRecord['status'],
    enrolledAt: row.enrolled_at,
    lastSeen: row.last_seen,
    appliedGeneration: Number(row.applied_generation),
    tenant: row.tenant,
  };
}
function siteFromRow(row: Database['sites']): SiteRecord {
  return { name: row.name, labels: parse(row.labels), spec: parse(row.spec), createdAt: row.created_at, updatedAt: row.updated_at };
}
function deploymentFromRow(row: Database['deployments']): DeploymentRecord {
  return {
    name: row.name,
    labels: parse(row.labels),
    spec: parse(row.spec),
    revision: Number(row.revision),
    targetRevision: Number(row.target_revision),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
function revisionFromRow(row: Database['deployment_revisions']): RevisionRecord {
  return { deployment: row.deployment, revision: Number(row.revision), templateHash: row.template_hash, template: parse(row.template), createdAt: row.created_at };
}
/**
 * The rollout machine holds a slot per device (megabytes at 10,000 devices) and most readers never
 * look at it (a list of rollouts, the overview): it is parsed on first use, once.
 */
function rolloutFromRow(row: Database['rollouts']): RolloutRecord {
  let machine: unknown;
  let parsed = false;
  return {
    name: row.name,
    deployment: row.deployment,
    revision: Number(row.revision),
    state: row.state,
    reason: row.reason,
    waves: parse(row.waves),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    fromRevision: row.from_revision === null ? null : Number(row.from_revision),
    get machine() {
      if (!parsed) {
        machine = row.machine === null ? null : parse(row.machine);
        parsed = true;
      }
      return machine;
    },
    set machine(value) {
      machine = value;
      parsed = true;
    },
  };
}
function incidentFromRow(row: Database['incidents']): IncidentRecord {
  return {
    id: row.id,
    rollout: row.rollout,
    deployment: row.deployment,
    state: row.state as IncidentRecord['state'],
    title: row.title,
    timeline: parse(row.timeline),
    openedAt: row.opened_at,
    closedAt: row.closed_at,
  };
}
function desiredFromRow(row: Database['device_desired']): DesiredRecord {
  return { device: row.device, generation: Number(row.generation), contentHash: row.content_hash, document: parse(row.document), issuedAt: row.issued_at };
}

function artifactFromRow(row: Database['artifacts']): ArtifactRecord {
  return { sha256: row.sha256, name: row.name, version: row.version, size: Number(row.size), signature: row.signature, createdAt: row.created_at };
}

/** Records grouped by a key (a device's components, a deployment's releases), in their listed order. */
export function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

/** An audit row as it was stored: a row edited by hand into something unreadable still comes back, to fail verification. */
function auditFromRow(row: Database['audit_log']): AuditEntry {
  let detail: Record<string, unknown>;
  try {
    detail = parse(row.detail);
  } catch {
    detail = { unreadable: row.detail };
  }
  return {
    seq: Number(row.seq),
    tenant: row.tenant,
    at: row.at,
    actor: row.actor,
    role: row.role,
    action: row.action,
    target: row.target,
    sourceIp: row.source_ip,
    status: Number(row.status),
    error: row.error,
    detail,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}
