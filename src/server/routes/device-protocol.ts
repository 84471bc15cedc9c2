import type { FastifyInstance } from 'fastify';
import { DriftlessError } from '../../protocol/errors.ts';
import { EnrollRequest, SessionRequest, StatusReport, type EnrollResponse, type SessionResponse } from '../../protocol/messages.ts';
import { loadPublicKey, sessionChallenge, verifyText } from '../../protocol/signing.ts';
import type { AppDeps } from '../app.ts';
import { hashToken, issueSessionToken } from '../auth/tokens.ts';
import { ensureSite } from '../fleet/apply.ts';
import type { StatusWriter } from '../status-writer.ts';

const SESSION_MS = 60 * 60 * 1000;
const CLOCK_SKEW_MS = 5 * 60 * 1000;

/** The device side of the API: enrol, prove identity, pull desired state, push status. */
export function registerDeviceRoutes(app: FastifyInstance, deps: AppDeps & { statusWriter: StatusWriter }): void {
  const { store, desired, presence, statusWriter } = deps;

  app.post<{ Body: EnrollRequest }>(
    '/v1/enroll',
    { config: { access: 'public', admission: true }, schema: { tags: ['device'], summary: 'Enrol a device with an enrollment token and its public key', body: EnrollRequest } },
    async (request, reply): Promise<EnrollResponse> => {
      const body = request.body;
      const token = await store.findEnrollToken(hashToken(body.token));
      const nowMs = deps.now();
      if (!token || token.revokedAt || (token.expiresAt && Date.parse(token.expiresAt) <= nowMs)) {
        throw new DriftlessError('unauthorized', 'enrollment token is not valid');
      }
      try {
        loadPublicKey(body.publicKey);
      } catch {
        throw new DriftlessError('invalid-input', 'request body: publicKey: not an Ed25519 public key (SPKI, base64)');
      }
      const nowIso = new Date(nowMs).toISOString();
      await desired.change(store, async (tx) => {
        const existing = await tx.getDevice(body.name);
        if (existing) {
          // The same key enrolling again is an agent that lost our answer; anything else is an impostor.
          if (existing.publicKey !== body.publicKey) throw new DriftlessError('conflict', `device name "${body.name}" is already enrolled with another key`);
          if (existing.status === 'revoked') throw new DriftlessError('forbidden', `device "${body.name}" is revoked`);
          return { result: undefined, devices: [] };
        }
        if (body.site) await ensureSite(tx, body.site, nowIso);
        await tx.insertDevice({
          name: body.name,
          site: body.site ?? null,
          labels: body.labels ?? {},
          facts: body.facts ?? {},
          publicKey: body.publicKey,
          status: 'accepted',
          enrolledAt: nowIso,
          lastSeen: nowIso,
          appliedGeneration: 0,
        });
        return { result: undefined, devices: [body.name] };
      });
      void reply.status(201);
      return { device: body.name, serverKey: deps.serverKey.publicKey, pollSeconds: deps.pollSeconds };
    },
  );

  app.post<{ Body: SessionRequest }>(
    '/v1/device/session',
    { config: { access: 'public', admission: true }, schema: { tags: ['device'], summary: 'Exchange a signature by the device key for a session token', body: SessionRequest } },
    async (request): Promise<SessionResponse> => {
      const { device: name, timestamp, signature } = request.body;
      const nowMs = deps.now();
      if (Math.abs(Date.parse(timestamp) - nowMs) > CLOCK_SKEW_MS) throw new DriftlessError('unauthorized', 'session request timestamp is too far from the server clock');
      const device = await store.getDevice(name);
      if (!device || !verifyText(loadPublicKey(device.publicKey), sessionChallenge(name, timestamp), signature)) {
        throw new DriftlessError('unauthorized', 'device is not enrolled or the signature does not match its key');
      }
      if (device.status !== 'accepted') throw new DriftlessError('forbidden', `device "${name}" is ${device.status}`);
      presence.saw(name, nowMs);
      const expiresAtMs = nowMs + SESSION_MS;
      return { token: issueSessionToken(deps.sessionSecret, name, expiresAtMs), expiresAt: new Date(expiresAtMs).toISOString() };
    },
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
