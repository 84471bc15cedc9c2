import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { createGunzip } from 'node:zlib';
import { DriftlessError } from '../../protocol/errors.ts';
import { TelemetryBatch, type TelemetryAck } from '../../protocol/messages.ts';
import type { AppDeps } from '../app.ts';
import type { TelemetryWriter } from '../status-writer.ts';
import { Count, readCount } from './query.ts';

const DeviceParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 253 }) });
const LogQuery = Type.Object(
  {
    component: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    after: Type.Optional(Count(Number.MAX_SAFE_INTEGER)),
    limit: Type.Optional(Count(1000)),
    /** The newest N lines instead (still in sequence order); not with `after`. */
    tail: Type.Optional(Count(1000)),
  },
  { additionalProperties: false },
);
const MetricQuery = Type.Object(
  {
    name: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9_]{0,63}$' })),
    component: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    since: Type.Optional(Type.String({ format: 'date-time' })),
    limit: Type.Optional(Count(5000)),
  },
  { additionalProperties: false },
);

/** Telemetry in (device side) and out (logs and metrics for operators). */
export function registerTelemetryRoutes(app: FastifyInstance, deps: AppDeps & { telemetryWriter: TelemetryWriter }): void {
  const { store, presence } = deps;

  app.post<{ Body: TelemetryBatch }>(
    '/v1/device/telemetry',
    {
      config: { access: 'device', admission: true },
      schema: { tags: ['device'], summary: 'Upload a sequence-numbered telemetry batch (logs, metrics, events), gzip or plain JSON', body: TelemetryBatch },
      preParsing: async (request, _reply, payload) => {
        const encoding = request.headers['content-encoding'];
        if (encoding === undefined || encoding === 'identity') return payload;
        if (encoding !== 'gzip') throw new DriftlessError('invalid-input', `content-encoding "${encoding}" is not supported; send gzip or plain JSON`);
        // The body limit counts inflated bytes, so a compressed bomb is refused as too large, not unpacked.
        const inflated = Object.assign(createGunzip(), { receivedEncodedLength: 0 });
        payload.on('data', (chunk: Buffer) => {
          inflated.receivedEncodedLength += chunk.length;
        });
        return payload.pipe(inflated);
      },
    },
    async (request): Promise<TelemetryAck> => {
      const device = request.device!;
      const nowMs = deps.now();
      presence.saw(device, nowMs);
      const mark = await deps.telemetryWriter.submit(device, request.body, new Date(nowMs).toISOString());
      return { ackedSeq: mark.seq };
    },
  );

  app.get<{ Params: Static<typeof DeviceParams>; Querystring: Static<typeof LogQuery> }>(
    '/v1/devices/:name/logs',
    {
      config: { access: 'viewer' },
      schema: { tags: ['telemetry'], summary: "A device's component output in sequence order; page with after=next", params: DeviceParams, querystring: LogQuery },
    },
    async (request) => {
      const { name } = request.params;
      const mark = await store.getTelemetryMark(name);
      if (!mark) throw new DriftlessError('not-found', `device "${name}" not found`);
      const q = request.query;
      if (q.tail !== undefined && q.after !== undefined) throw new DriftlessError('invalid-input', 'querystring: tail: cannot be combined with after');
      const component = q.component ? { component: q.component } : {};
      if (q.tail !== undefined) {
        const logs = await store.listLogs(name, { ...component, limit: Math.max(1, readCount(q.tail, 100, 1000, 'tail')), newest: true });
        return { logs, next: logs.at(-1)?.seq ?? mark.seq, dropped: mark.dropped };
      }
      const after = readCount(q.after, 0, Number.MAX_SAFE_INTEGER, 'after');
      const logs = await store.listLogs(name, { ...component, after, limit: Math.max(1, readCount(q.limit, 500, 1000, 'limit')) });
      return { logs, next: logs.at(-1)?.seq ?? after, dropped: mark.dropped };
    },
  );

  app.get<{ Params: Static<typeof DeviceParams>; Querystring: Static<typeof MetricQuery> }>(
    '/v1/devices/:name/metrics',
    {
      config: { access: 'viewer' },
      schema: { tags: ['telemetry'], summary: "A device's recent host and component metrics, newest first", params: DeviceParams, querystring: MetricQuery },
    },
    async (request) => {
      const { name } = request.params;
      if (!(await store.getTelemetryMark(name))) throw new DriftlessError('not-found', `device "${name}" not found`);
      const q = request.query;
      const metrics = await store.listMetrics(name, {
        ...(q.name ? { name: q.name } : {}),
        ...(q.component ? { component: q.component } : {}),
        ...(q.since ? { since: q.since } : {}),
        limit: Math.max(1, readCount(q.limit, 1000, 5000, 'limit')),
      });
      return { metrics };
    },
  );
}
