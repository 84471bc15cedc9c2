import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { DriftlessError } from '../../protocol/errors.ts';
import { applicableKinds, DeviceView, DriftEntry, driftReasons, oneOf, type AppliedResource, type DeploymentView, type SiteView } from '../../protocol/resources.ts';
import { resourceProblems } from '../../protocol/rules.ts';
import { matchesRequirements, parseLabelSelector } from '../../protocol/selectors.ts';
import { clip, problems } from '../../protocol/validate.ts';
import type { AppDeps } from '../app.ts';
import { summariseDrift } from '../drift/drift.ts';
import { applyResources } from '../fleet/apply.ts';
import { fleetView, viewOf } from '../fleet/views.ts';
import type { DeploymentRecord } from '../store/store.ts';
import { driftPage } from '../fleet/fleet-queries.ts';
import { MAX_FLEET_PAGE, readFleetFilter, readPage } from './fleet.ts';
import { Count } from './query.ts';
import { rolloutView } from './rollouts.ts';

const ApplyBody = Type.Object({ resources: Type.Array(Type.Unknown(), { minItems: 1, maxItems: 1000 }) }, { additionalProperties: false });
/** Apply takes no query parameters: an unknown one (say `?dryRun=true`) must be refused, not ignored while the change goes through. */
const NameParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 253 }) });
const DriftQuery = Type.Object(
  {
    q: Type.Optional(Type.String({ maxLength: 253, description: 'part of the device name, any case' })),
    site: Type.Optional(Type.String({ maxLength: 63 })),
    selector: Type.Optional(Type.String({ maxLength: 1000 })),
    reason: Type.Optional(oneOf(driftReasons)),
    limit: Type.Optional(Count(MAX_FLEET_PAGE)),
    offset: Type.Optional(Count(Number.MAX_SAFE_INTEGER)),
  },
  { additionalProperties: false },
);
const DeviceQuery = Type.Object(
  { selector: Type.Optional(Type.String({ maxLength: 1000 })), site: Type.Optional(Type.String({ maxLength: 63 })) },
  { additionalProperties: false },
);

/** Reads each submitted resource against the schema of its kind; the first problem names its index and field. */
function readResources(items: readonly unknown[]): AppliedResource[] {
  return items.map((item, index) => {
    const kind = (item as { kind?: unknown } | null)?.kind;
    const name = (item as { metadata?: { name?: unknown } } | null)?.metadata?.name;
    // Clipped: an input's own kind or name may be megabytes, and the message echoes them.
    const where = `resources[${index}]${typeof kind === 'string' ? ` (${clip(kind, 40)}${typeof name === 'string' ? ` ${clip(name, 80)}` : ''})` : ''}`;
    if (typeof kind !== 'string' || !Object.hasOwn(applicableKinds, kind)) {
      throw new DriftlessError('invalid-input', `${where}: kind: must be one of ${Object.keys(applicableKinds).join(', ')}`);
    }
    const schema = applicableKinds[kind as keyof typeof applicableKinds];
    const [first] = [...problems(schema, item, 1), ...(problems(schema, item, 1).length === 0 ? resourceProblems(item as AppliedResource) : [])];
    if (first) throw new DriftlessError('invalid-input', `${where}: ${first.field}: ${first.message}`);
    return item as AppliedResource;
  });
}

/** Operators' resources: apply, list, describe, drift. Reads need viewer, changes need operator. */
export function registerResourceRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { store, desired, rollouts, presence } = deps;
  const clock = { now: deps.now, offlineAfterMs: deps.offlineAfterMs };

  app.post<{ Body: Static<typeof ApplyBody> }>(
    '/v1/apply',
    { config: { access: 'operator' }, schema: { tags: ['resources'], summary: 'Create or update resources; all or nothing', body: ApplyBody } },
    async (request) => {
      const resources = readResources(request.body.resources);
      const nowIso = new Date(deps.now()).toISOString();
      const results = await desired.change(store, async (tx) => ({ result: await applyResources(tx, rollouts, resources, nowIso), devices: 'all' }));
      return { results };
    },
  );

  app.get<{ Querystring: Static<typeof DeviceQuery> }>(
    '/v1/devices',
    { config: { access: 'viewer' }, schema: { tags: ['devices'], summary: 'Devices with desired and actual state', querystring: DeviceQuery, response: { 200: Type.Array(DeviceView) } } },
    async (request) => {
      const requirements = request.query.selector ? parseLabelSelector(request.query.selector) : [];
      const site = request.query.site;
      const { devices } = await fleetView(store, presence, clock, (d) => matchesRequirements(d.labels, requirements) && (!site || d.site === site));
      return devices;
    },
  );

  app.get<{ Params: Static<typeof NameParams> }>(
    '/v1/devices/:name',
    { config: { access: 'viewer' }, schema: { tags: ['devices'], summary: 'One device with recent events and status history', params: NameParams } },
    async (request) => {
      const device = await store.getDevice(request.params.name);
      if (!device) throw new DriftlessError('not-found', `device "${request.params.name}" not found`);
      const { view, drift } = viewOf(device, (await store.getDesired(device.name)) ?? undefined, await store.listComponents(device.name), presence, clock);
      return { ...view, drift, events: await store.listEvents(device.name, 50), history: await store.listStatusHistory(device.name, 20) };
    },
  );

  app.get<{ Querystring: Static<typeof DriftQuery> }>(
    '/v1/drift',
    {
      config: { access: 'viewer' },
      schema: { tags: ['devices'], summary: 'Every device and component whose actual state differs from desired, and why; filter by site, labels, reason, name', querystring: DriftQuery },
    },
    async (request): Promise<{ summary: string; total: number; reasons: Record<string, number>; entries: Static<typeof DriftEntry>[] }> => {
      const q = request.query;
      // The CLI reads every entry: without a limit, none is applied.
      const page = q.limit === undefined ? { offset: readPage(q).offset, limit: Infinity } : readPage(q);
      const { devices, drift } = await fleetView(store, presence, clock);
      const labels = new Map(devices.map((d) => [d.name, d.labels]));
      const filtered = driftPage(drift, (device) => labels.get(device), readFleetFilter(q), page);
      return { summary: summariseDrift(drift, devices.length), ...filtered };
    },
  );

  app.get('/v1/sites', { config: { access: 'viewer' }, schema: { tags: ['sites'], summary: 'Sites' } }, async (): Promise<SiteView[]> => {
    const devices = await store.listDevices();
    return (await store.listSites()).map((s) => ({ name: s.name, labels: s.labels, spec: s.spec, devices: devices.filter((d) => d.site === s.name).length, createdAt: s.createdAt }));
  });
  app.get<{ Params: Static<typeof NameParams> }>('/v1/sites/:name', { config: { access: 'viewer' }, schema: { tags: ['sites'], params: NameParams } }, async (request) => {
    const site = await store.getSite(request.params.name);
    if (!site) throw new DriftlessError('not-found', `site "${request.params.name}" not found`);
    const devices = (await store.listDevices()).filter((d) => d.site === site.name).map((d) => d.name);
    return { name: site.name, labels: site.labels, spec: site.spec, devices: devices.length, deviceNames: devices, createdAt: site.createdAt };
  });

  app.get('/v1/deployments', { config: { access: 'viewer' }, schema: { tags: ['deployments'], summary: 'Deployments' } }, async (): Promise<DeploymentView[]> => {
    return (await store.listDeployments()).map(deploymentView);
  });
  app.get<{ Params: Static<typeof NameParams> }>('/v1/deployments/:name', { config: { access: 'viewer' }, schema: { tags: ['deployments'], params: NameParams } }, async (request) => {
    const deployment = await store.getDeployment(request.params.name);
    if (!deployment) throw new DriftlessError('not-found', `deployment "${request.params.name}" not found`);
    const revisions = (await store.listRevisions(deployment.name)).map((r) => ({ revision: r.revision, version: r.template.version, createdAt: r.createdAt }));
    const history = (await store.listRollouts(deployment.name)).map(rolloutView);
    return { ...deploymentView(deployment), revisions, rollouts: history };
  });
}

function deploymentView(d: DeploymentRecord): DeploymentView {
  return { name: d.name, labels: d.labels, spec: d.spec, revision: d.revision, targetRevision: d.targetRevision, createdAt: d.createdAt, updatedAt: d.updatedAt };
}


