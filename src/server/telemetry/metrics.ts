import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { AppDeps } from '../app.ts';
import type { StatusWriter, TelemetryWriter } from '../status-writer.ts';

/**
 * `/metrics` in the Prometheus text format: the fleet (devices online and offline, components by
 * state, rollouts, open incidents, telemetry the devices dropped) and the server itself (requests,
 * write queues, process figures). Fleet figures are computed when scraped, from the store, so
 * they are never stale; a registry per app keeps two servers in one process apart.
 */
export function registerMetricsRoute(app: FastifyInstance, deps: AppDeps & { statusWriter: StatusWriter; telemetryWriter: TelemetryWriter }): void {
  const { store, presence } = deps;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'driftless_server_' });

  const requests = new Counter({ name: 'driftless_http_requests_total', help: 'HTTP requests answered, by route and status class', labelNames: ['route', 'status'] as const, registers: [registry] });
  app.addHook('onResponse', async (request, reply) => {
    requests.inc({ route: request.routeOptions.url ?? 'unknown', status: `${Math.floor(reply.statusCode / 100)}xx` });
  });

  new Gauge({
    name: 'driftless_write_queue_depth',
    help: 'Reports waiting for their group commit, by writer',
    labelNames: ['writer'] as const,
    registers: [registry],
    collect() {
      this.set({ writer: 'status' }, deps.statusWriter.depth());
      this.set({ writer: 'telemetry' }, deps.telemetryWriter.depth());
    },
  });
  new Gauge({
    name: 'driftless_devices',
    help: 'Enrolled devices, by presence',
    labelNames: ['presence'] as const,
    registers: [registry],
    async collect() {
      const counts = { online: 0, offline: 0, revoked: 0 };
      const nowMs = deps.now();
      for (const device of await store.listDevices()) {
        if (device.status !== 'accepted') counts.revoked++;
        else if (presence.isOnline(device, nowMs, deps.offlineAfterMs)) counts.online++;
        else counts.offline++;
      }
      for (const [key, value] of Object.entries(counts)) this.set({ presence: key }, value);
    },
  });
  /** A gauge of how many items are in each state, recounted at every scrape. */
  const countByState = (name: string, help: string, items: () => Promise<readonly { state: string }[]>) =>
    new Gauge({
      name,
      help,
      labelNames: ['state'] as const,
      registers: [registry],
      async collect() {
        this.reset();
        const counts = new Map<string, number>();
        for (const item of await items()) counts.set(item.state, (counts.get(item.state) ?? 0) + 1);
        for (const [state, value] of counts) this.set({ state }, value);
      },
    });
  countByState('driftless_components', 'Components as devices last reported them, by state', () => store.listComponents());
  countByState('driftless_rollouts', 'Rollouts, by state', () => store.listRollouts());
  new Gauge({
    name: 'driftless_incidents_open',
    help: 'Incidents not yet closed',
    registers: [registry],
    async collect() {
      this.set((await store.listIncidents()).filter((i) => i.state === 'open').length);
    },
  });
  new Gauge({
    name: 'driftless_telemetry_dropped_records',
    help: 'Telemetry records devices had to drop because their outbox was full (running totals, summed over the fleet)',
    registers: [registry],
    async collect() {
      this.set(await store.sumTelemetryDropped());
    },
  });

  app.get('/metrics', { config: { access: 'viewer' }, schema: { tags: ['telemetry'], summary: 'Fleet and server metrics in the Prometheus text format' } }, async (_request, reply) => {
    const text = await registry.metrics();
    return reply.type(registry.contentType).send(text);
  });
}
