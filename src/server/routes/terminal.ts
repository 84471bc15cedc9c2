import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { ExecRequest, ExecResponse, Recording } from '../../protocol/channel.ts';
import { DriftlessError } from '../../protocol/errors.ts';
import type { AppDeps } from '../app.ts';
import { createConcurrencyLimit, type ConcurrencyLimit } from '../rate-limit.ts';
import { relayTerminal, runExec, type SessionContext } from '../terminal/relay.ts';
import { relayExecToReplica, relayTerminalToReplica, wasRelayed } from '../terminal/replica-relay.ts';

/** Remote sessions (terminals and running execs) one caller may hold open at once. */
const SESSIONS_PER_CALLER = 8;

const DeviceParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 253 }) });
const RecordingParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });
const Size = Type.String({ pattern: '^[1-9][0-9]{0,2}$', description: 'a whole number from 1 to 999' });
const TerminalQuery = Type.Object({ cols: Type.Optional(Size), rows: Type.Optional(Size) }, { additionalProperties: false });

type DeviceRequest = FastifyRequest<{ Params: Static<typeof DeviceParams> }>;

/**
 * Remote access through the agent's own channel, never through the workload runtime: the device
 * channel itself, an operator's terminal (WebSocket), exec (HTTP), and the session recordings.
 */
export function registerTerminalRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { store, channels, recordings } = deps;
  const log = (message: string) => app.log.warn(message);
  const open: ConcurrencyLimit = createConcurrencyLimit(SESSIONS_PER_CALLER, 'remote sessions');
  const caller = (request: FastifyRequest) => `${request.tenant ?? 'default'}/${request.actor ?? 'unknown'}`;

  // An agent's channel: hints and sessions. A device that is not accepted (revoked, pending) is refused.
  app.get(
    '/v1/device/channel',
    {
      websocket: true,
      config: { access: 'device' },
      schema: { tags: ['device'], summary: "The agent's WebSocket: desired-state hints, terminal and exec sessions" },
      preHandler: async (request) => {
        const device = await store.getDevice(request.device!);
        if (!device) throw new DriftlessError('unauthorized', `device "${request.device}" is not enrolled`);
        if (device.status !== 'accepted') throw new DriftlessError('forbidden', `device "${device.name}" is ${device.status}`);
      },
    },
    (socket, request) => channels.attach(request.device!, socket),
  );

  /**
   * The device a remote session goes to: this tenant's, accepted, connected and willing; or, when
   * its channel is open to another server replica, that replica's URL to pass the request on to.
   */
  async function reachable(request: DeviceRequest, what: 'a terminal' | 'exec'): Promise<SessionContext | { replica: string }> {
    const { name } = request.params;
    const device = await store.getDevice(name);
    const tenant = request.tenant ?? 'default';
    const owner = device?.tenant ?? tenant;
    if (!device || owner !== tenant) throw new DriftlessError('not-found', `device "${name}" not found`);
    if (device.status !== 'accepted') throw new DriftlessError('forbidden', `device "${name}" is ${device.status}; no remote sessions`);
    if (!recordings) throw new DriftlessError('unavailable', 'this server keeps no session recordings, so it opens no remote sessions');
    const info = channels.info(name);
    if (!info && deps.locateDevice && !wasRelayed(request)) {
      const replica = await deps.locateDevice(name);
      if (replica) return { replica };
    }
    if (!info) throw new DriftlessError('unavailable', `device "${name}" has no channel open to this server (offline, still connecting, or connected to another server replica); cannot open ${what}`);
    if (!info.remoteShell) throw new DriftlessError('forbidden', `device "${name}" refuses remote shells and exec by its local configuration (agent started with --no-remote-shell)`);
    return { channels, recordings, audit: deps.audit, tenant, device: name, actor: request.actor ?? 'unknown', log };
  }

  app.get<{ Params: Static<typeof DeviceParams>; Querystring: Static<typeof TerminalQuery> }>(
    '/v1/devices/:name/terminal',
    {
      websocket: true,
      config: { access: 'operator' },
      schema: { tags: ['terminal'], summary: 'An interactive shell on the device (WebSocket; frames in protocol/channel.ts)', params: DeviceParams, querystring: TerminalQuery },
      preHandler: async (request) => {
        const session = await reachable(request, 'a terminal');
        // Taken before the upgrade, so a caller over the limit gets a plain 429, and given back when the socket closes.
        const held = open.acquire(caller(request));
        // Whatever becomes of the upgrade, the connection closing gives the turn back (release is idempotent).
        request.raw.socket.once('close', () => held.release());
        (request as unknown as { session: SessionContext; held: { release(): void } }).held = held;
        (request as unknown as { session: SessionContext | { replica: string } }).session = session;
      },
    },
    (socket, request) => {
      const { session: ctx, held } = request as unknown as { session: SessionContext | { replica: string }; held: { release(): void } };
      socket.once('close', () => held.release());
      const size = { cols: Number(request.query.cols ?? 80), rows: Number(request.query.rows ?? 24) };
      if ('replica' in ctx) {
        const target = `${ctx.replica.replace(/^http/, 'ws')}/v1/devices/${encodeURIComponent(request.params.name)}/terminal?cols=${size.cols}&rows=${size.rows}`;
        relayTerminalToReplica(socket, target, request);
      } else {
        relayTerminal(ctx, socket, size);
      }
    },
  );

  app.post<{ Params: Static<typeof DeviceParams>; Body: ExecRequest }>(
    '/v1/devices/:name/exec',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['terminal'],
        summary: "Run a command on the device's host or in a component's container; its output and exit code",
        params: DeviceParams,
        body: ExecRequest,
        response: { 200: ExecResponse },
      },
    },
    async (request, reply: FastifyReply): Promise<ExecResponse> => {
      const ctx = await reachable(request, 'exec');
      const held = open.acquire(caller(request));
      const gone = new AbortController();
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) gone.abort();
      });
      try {
        if ('replica' in ctx) return (await relayExecToReplica(ctx.replica, request, gone.signal)) as ExecResponse;
        return await runExec(ctx, request.body, gone.signal);
      } finally {
        held.release();
      }
    },
  );

  app.get(
    '/v1/recordings',
    { config: { access: 'operator' }, schema: { tags: ['terminal'], summary: 'Recorded terminal and exec sessions, newest first', response: { 200: Type.Array(Recording) } } },
    async (request) => ((await recordings?.list()) ?? []).filter((r) => r.tenant === (request.tenant ?? 'default')),
  );

  app.get<{ Params: Static<typeof RecordingParams> }>(
    '/v1/recordings/:id',
    { config: { access: 'operator' }, schema: { tags: ['terminal'], summary: 'One recording as an asciicast v2 file', params: RecordingParams } },
    async (request, reply) => {
      const { id } = request.params;
      const text = await recordings?.read(id);
      const header = text ? JSON.parse(text.slice(0, text.indexOf('\n'))) as { driftless?: { tenant?: string } } : null;
      if (!text || header?.driftless?.tenant !== (request.tenant ?? 'default')) throw new DriftlessError('not-found', `recording "${id}" not found`);
      return reply.type('application/x-asciicast').send(text);
    },
  );
}
