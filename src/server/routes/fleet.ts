import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { DriftlessError } from '../../protocol/errors.ts';
import { driftReasons, oneOf } from '../../protocol/resources.ts';
import { parseLabelSelector } from '../../protocol/selectors.ts';
import type { RouteDeps } from '../app.ts';
import { fleetStates, type FleetIndex } from '../fleet/fleet-index.ts';
import { devicePage, deviceSorts, overviewOf, sitePage, siteSorts, type FleetFilter } from '../fleet/fleet-queries.ts';
import { rolloutView } from './rollouts.ts';
import { Count, readCount } from './query.ts';

export const MAX_FLEET_PAGE = 500;
const Order = Type.Optional(oneOf(['asc', 'desc'] as const));
const PageQuery = { limit: Type.Optional(Count(MAX_FLEET_PAGE)), offset: Type.Optional(Count(Number.MAX_SAFE_INTEGER)) };
const Search = Type.Optional(Type.String({ maxLength: 253, description: 'part of the name, any case' }));
const DeviceTableQuery = Type.Object(
  {
    q: Search,
    site: Type.Optional(Type.String({ maxLength: 63 })),
    selector: Type.Optional(Type.String({ maxLength: 1000, description: 'label selector: tier=store,region!=eu-west,gpu,!legacy' })),
    state: Type.Optional(oneOf(fleetStates)),
    reason: Type.Optional(oneOf(driftReasons)),
    sort: Type.Optional(oneOf(deviceSorts)),
    order: Order,
    ...PageQuery,
  },
  { additionalProperties: false },
);
const SiteTableQuery = Type.Object({ q: Search, sort: Type.Optional(oneOf(siteSorts)), order: Order, ...PageQuery }, { additionalProperties: false });

/** The offset and limit of a page; a page is never unbounded. */
export function readPage(query: { limit?: string; offset?: string }): { limit: number; offset: number } {
  const limit = readCount(query.limit, 50, MAX_FLEET_PAGE, 'limit');
  if (limit < 1) throw new DriftlessError('invalid-input', 'querystring: limit: must be at least 1');
  return { limit, offset: readCount(query.offset, 0, Number.MAX_SAFE_INTEGER, 'offset') };
}

function readSelector(text: string) {
  try {
    return parseLabelSelector(text);
  } catch (error) {
    if (error instanceof DriftlessError) throw new DriftlessError('invalid-input', `querystring: selector: ${error.message.replace(/^label selector: /, '')}`);
    throw error;
  }
}

/** The filters of the device table and the drift list, read once. */
export function readFleetFilter(query: { q?: string; site?: string; selector?: string; state?: FleetFilter['state']; reason?: string }): FleetFilter {
  return {
    ...(query.q ? { q: query.q } : {}),
    ...(query.site !== undefined ? { site: query.site } : {}),
    ...(query.selector ? { selector: readSelector(query.selector) } : {}),
    ...(query.state ? { state: query.state } : {}),
    ...(query.reason ? { reason: query.reason } : {}),
  };
}

/**
 * What the dashboard shows at a glance: the overview, and device and site tables filtered, sorted
 * and paged on the server, all answered from one shared snapshot of the fleet (fleet-index.ts) so
 * that a 10,000-device fleet costs one analysis a second however many dashboards watch it.
 */
export function registerFleetRoutes(app: FastifyInstance, deps: RouteDeps & { fleetIndex: FleetIndex }): void {
  const snapshot = (tenant: string | null) => deps.fleetIndex.snapshot(deps.store, tenant ?? 'default');

  app.get('/v1/whoami', { config: { access: 'viewer' }, schema: { tags: ['tokens'], summary: "Who the token is: its actor, its description as a name, its role and tenant" } }, async (request) => {
    const id = request.actor?.startsWith('token:') ? request.actor.slice('token:'.length) : null;
    const token = id === null ? undefined : (await deps.store.listApiTokens()).find((t) => t.id === id);
    return { actor: request.actor, name: token?.description || null, role: request.role, tenant: request.tenant };
  });

  app.get(
    '/v1/fleet/overview',
    { config: { access: 'viewer' }, schema: { tags: ['devices'], summary: 'Device states by site and region, versions per deployment, active rollouts and open incidents' } },
    async (request) => {
      const overview = overviewOf(await snapshot(request.tenant));
      return { ...overview, rollouts: overview.rollouts.map(rolloutView) };
    },
  );

  app.get<{ Querystring: Static<typeof DeviceTableQuery> }>(
    '/v1/fleet/devices',
    { config: { access: 'viewer' }, schema: { tags: ['devices'], summary: 'One page of the device table: search, filter, sort on the server', querystring: DeviceTableQuery } },
    async (request) => {
      const q = request.query;
      return devicePage(await snapshot(request.tenant), readFleetFilter(q), q.sort ?? 'name', q.order ?? 'asc', readPage(q));
    },
  );

  app.get<{ Querystring: Static<typeof SiteTableQuery> }>(
    '/v1/fleet/sites',
    { config: { access: 'viewer' }, schema: { tags: ['sites'], summary: 'One page of the site table with device states', querystring: SiteTableQuery } },
    async (request) => {
      const q = request.query;
      return sitePage(await snapshot(request.tenant), q.q, q.sort ?? 'name', q.order ?? 'asc', readPage(q));
    },
  );
}
