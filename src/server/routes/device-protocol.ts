import type { FastifyInstance } from 'fastify';
import { DriftlessError } from '../../protocol/errors.ts';
import { EnrollRequest, SessionRequest, StatusReport, type EnrollResponse, type SessionResponse } from '../../protocol/messages.ts';
import { loadPublicKey, sessionChallenge, verifyText } from '../../protocol/signing.ts';
import type { ServerKeys } from '../../protocol/key-rotation.ts';
import type { RouteDeps } from '../app.ts';
import { loadRotations } from '../keys/signing-keys.ts';
import { hashToken, issueSessionToken } from '../auth/tokens.ts';
import { ensureSite } from '../fleet/apply.ts';
import type { StatusWriter } from '../status-writer.ts';

const SESSION_MS = 60 * 60 * 1000;
const CLOCK_SKEW_MS = 5 * 60 * 1000;

/** The device side of the API: enrol, prove identity, pull desired state, push status. */
export function registerDeviceRoutes(app: FastifyInstance, deps: RouteDeps & { statusWriter: StatusWriter }): void {
  // Enrollment and sessions come before any tenant is known: they find it (from the token, from the device) on the server-wide store.
  const { serverStore, desired, presence, statusWriter, deviceGate } = deps;

  app.post<{ Body: EnrollRequest }>(
    '/v1/enroll',
    { config: { access: 'public', admission: true, authAttempt: { identity: 'name' } }, schema: { tags: ['device'], summary: 'Enrol a device with an enrollment token and its public key', body: EnrollRequest } },
    async (request, reply): Promise<EnrollResponse> => {
      const body = request.body;
      const token = await serverStore.findEnrollToken(hashToken(body.token));
      const nowMs = deps.now();
      if (!token || token.revokedAt || (token.expiresAt && Date.parse(token.expiresAt) <= nowMs)) {
        throw new DriftlessError('unauthorized', 'enrollment token is not valid');
      }
      // The audit trail names the enrollment token used (by id, never its secret) and records in the tenant it joins.
      request.actor = `enroll-token:${token.id}`;
      request.tenant = token.tenant ?? 'default';
      if (token.site && body.site && body.site !== token.site) throw new DriftlessError('forbidden', `this enrollment token is for site "${token.site}", not "${body.site}"`);
      const site = token.site ?? body.site ?? null;
      const status: 'pending' | 'accepted' = token.autoAccept === false ? 'pending' : 'accepted';
      const store = serverStore.forTenant(token.tenant ?? 'default');
      try {
        loadPublicKey(body.publicKey);
      } catch {
        throw new DriftlessError('invalid-input', 'request body: publicKey: not an Ed25519 public key (SPKI, base64)');
      }
      const nowIso = new Date(nowMs).toISOString();
      const taken = `device name "${body.name}" is already enrolled with another key`;
      const joined = await desired.change(store, async (tx) => {
        const existing = await tx.getDevice(body.name);
        if (existing) {
          // The same key enrolling again is an agent that lost our answer; anything else is an impostor.
          if (existing.publicKey !== body.publicKey) throw new DriftlessError('conflict', taken);
          if (existing.status === 'revoked') throw new DriftlessError('forbidden', `device "${body.name}" is revoked`);
          return { result: null, devices: [] };
        }
        // Device names are unique server-wide: one taken in another tenant answers as any name taken (nothing says where).
        if ((await tx.deviceTenant(body.name)) !== null) throw new DriftlessError('conflict', taken);
        if (!(await tx.useEnrollToken(token.id))) throw new DriftlessError('unauthorized', 'enrollment token is not valid: its uses are used up');
        if (site) await ensureSite(tx, site, nowIso);
        await tx.insertDevice({
          name: body.name,
          site,
          labels: body.labels ?? {},
          facts: body.facts ?? {},
          publicKey: body.publicKey,
          status,
          enrolledAt: nowIso,
          lastSeen: nowIso,
          appliedGeneration: 0,
        });
        return { result: status, devices: status === 'accepted' ? [body.name] : [] };
      });
      if (joined) deviceGate.set(body.name, joined);
      request.auditDetail = { decision: joined ?? 'already-enrolled' };
      void reply.status(201);
      return { device: body.name, serverKey: deps.serverKey.publicKey, pollSeconds: deps.pollSeconds };
    },
  );

  app.post<{ Body: SessionRequest }>(
    '/v1/device/session',
    // Audited only when refused: a renewal every hour from every device is no operator's action.
    { config: { access: 'public', admission: true, authAttempt: { identity: 'device' }, audit: 'failures' }, schema: { tags: ['device'], summary: 'Exchange a signature by the device key for a session token', body: SessionRequest } },
    async (request): Promise<SessionResponse> => {
      const { device: name, timestamp, signature } = request.body;
      const nowMs = deps.now();
      if (Math.abs(Date.parse(timestamp) - nowMs) > CLOCK_SKEW_MS) throw new DriftlessError('unauthorized', 'session request timestamp is too far from the server clock');
      const device = await serverStore.getDevice(name);
      const tenant = device ? await serverStore.deviceTenant(name) : null;
      if (!device || !tenant || !verifyText(loadPublicKey(device.publicKey), sessionChallenge(name, timestamp), signature)) {
        throw new DriftlessError('unauthorized', 'device is not enrolled or the signature does not match its key');
      }
      if (device.status === 'pending') throw new DriftlessError('forbidden', `device "${name}" is pending approval: an operator accepts it with \`driftless device accept ${name}\``);
      if (device.status !== 'accepted') throw new DriftlessError('forbidden', `device "${name}" is ${device.status}`);
      presence.saw(name, nowMs);
      const expiresAtMs = nowMs + SESSION_MS;
      return { token: issueSessionToken(deps.sessionSecret, name, expiresAtMs, tenant), expiresAt: new Date(expiresAtMs).toISOString() };
    },
  );

  app.get(
    '/v1/device/keys',
    { config: { access: 'device' }, schema: { tags: ['device'], summary: "Rotations of the server's signing key, each signed by the key before it" } },
    async (): Promise<ServerKeys> => ({ rotations: await loadRotations(serverStore) }),
  );

  // The hot path: an unchanged state is answered from memory with 304, no database and no signing.
  app.get(
    '/v1/device/desired-state',
    { config: { access: 'device' }, schema: { tags: ['device'], summary: "The device's signed desired state (conditional GET)" } },
    async (request, reply) => {
      const device = request.device!;
      presence.saw(device, deps.now());
      const served = desired.served(device);
      if (!served) throw new DriftlessError('not-found', `no desired state for device "${device}"`);
      if (request.headers['if-none-match'] === served.etag) return reply.header('etag', served.etag).header('cache-control', 'no-cache').status(304).send();
      // A whole document to send is costly enough to wait its turn when thousands return at once;
      // after the wait, the newest one is sent.
      await reply.admit();
      const current = desired.served(device) ?? served;
      return reply.header('etag', current.etag).header('cache-control', 'no-cache').type('application/json').send(current.body);
    },
  );

  app.post<{ Body: StatusReport }>(
    '/v1/device/status',
    { config: { access: 'device', admission: true }, schema: { tags: ['device'], summary: 'Report component states and events', body: StatusReport } },
    async (request) => {
      const device = request.device!;
      const report = request.body;
      const nowMs = deps.now();
      presence.saw(device, nowMs);
      const receivedAt = new Date(nowMs).toISOString();
      await statusWriter.submit(device, report, receivedAt);
      const ackedSeq = report.events.reduce((max, e) => Math.max(max, e.seq), 0);
      return { ackedSeq };
    },
  );
}
