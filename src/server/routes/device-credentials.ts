import type { FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { DURATION_PATTERN } from '../../protocol/duration.ts';
import { DriftlessError } from '../../protocol/errors.ts';
import { Name } from '../../protocol/resources.ts';
import type { RouteDeps } from '../app.ts';
import { hashToken, newSecretToken } from '../auth/tokens.ts';
import { expiryOf, tokenView } from './tokens.ts';

const CreateEnrollToken = Type.Object(
  {
    description: Type.Optional(Type.String({ maxLength: 200 })),
    site: Type.Optional(Name),
    expires: Type.Optional(Type.String({ pattern: DURATION_PATTERN, description: 'lifetime: a number and s, m, h, d or w (`30d`)' })),
    uses: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'how many devices may enrol with it' })),
    /** Stated every time: whether a device that holds the token is trusted at once is a decision, not a default. */
    autoAccept: Type.Boolean({ description: 'accept devices at once (true) or leave them pending for an operator (false)' }),
  },
  { additionalProperties: false },
);
const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });
const NameParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 253 }) });

/**
 * How devices join and leave a tenant: enrollment tokens (scoped to the tenant and optionally a
 * site, expiring, with a use limit), and an operator's accept or revoke. A revoked device is
 * refused at once on every channel: its sessions by the device gate, its open channel dropped.
 */
export function registerDeviceCredentialRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const { store, desired, deviceGate } = deps;

  app.post<{ Body: Static<typeof CreateEnrollToken> }>(
    '/v1/enroll-tokens',
    { config: { access: 'admin' }, schema: { tags: ['tokens'], summary: 'Create an enrollment token for this tenant', body: CreateEnrollToken } },
    async (request, reply) => {
      const body = request.body;
      const token = newSecretToken('dle');
      const id = randomUUID();
      const createdAt = new Date(deps.now()).toISOString();
      const record = {
        id,
        description: body.description ?? '',
        createdAt,
        expiresAt: expiryOf(body.expires, deps.now()),
        revokedAt: null,
        site: body.site ?? null,
        maxUses: body.uses ?? null,
        uses: 0,
        autoAccept: body.autoAccept,
      };
      await store.insertEnrollToken({ ...record, tokenHash: hashToken(token) });
      void reply.status(201);
      return { ...enrollTokenView(record, deps.now()), token };
    },
  );

  app.get('/v1/enroll-tokens', { config: { access: 'admin' }, schema: { tags: ['tokens'], summary: "This tenant's enrollment tokens (never their secrets)" } }, async () => {
    const nowMs = deps.now();
    return (await store.listEnrollTokens()).map((t) => enrollTokenView(t, nowMs));
  });

  app.post<{ Params: Static<typeof IdParams> }>(
    '/v1/enroll-tokens/:id/revoke',
    { config: { access: 'admin' }, schema: { tags: ['tokens'], summary: 'Revoke an enrollment token: no device joins with it any more', params: IdParams } },
    async (request) => {
      if (!(await store.revokeEnrollToken(request.params.id, new Date(deps.now()).toISOString()))) throw new DriftlessError('not-found', `enrollment token "${request.params.id}" not found`);
      return { id: request.params.id, revoked: true };
    },
  );

  app.post<{ Params: Static<typeof NameParams> }>(
    '/v1/devices/:name/accept',
    { config: { access: 'operator' }, schema: { tags: ['devices'], summary: 'Accept a pending device: it gets its desired state', params: NameParams } },
    async (request) => {
      const { name } = request.params;
      const status = await desired.change(store, async (tx) => {
        const device = await tx.getDevice(name);
        if (!device) throw new DriftlessError('not-found', `device "${name}" not found`);
        if (device.status === 'revoked') throw new DriftlessError('conflict', `device "${name}" is revoked; a revoked device stays revoked (its key may be compromised): enrol it again under a new name`);
        if (device.status === 'accepted') return { result: 'unchanged' as const, devices: [] };
        await tx.updateDevice(name, { status: 'accepted' });
        return { result: 'accepted' as const, devices: [name] };
      });
      deviceGate.set(name, 'accepted');
      return { name, status: 'accepted', action: status };
    },
  );

  app.post<{ Params: Static<typeof NameParams> }>(
    '/v1/devices/:name/revoke',
    { config: { access: 'operator' }, schema: { tags: ['devices'], summary: 'Revoke a device: refused at once on every channel', params: NameParams } },
    async (request) => {
      const { name } = request.params;
      const action = await store.transaction(async (tx) => {
        const device = await tx.getDevice(name);
        if (!device) throw new DriftlessError('not-found', `device "${name}" not found`);
        if (device.status === 'revoked') return 'unchanged' as const;
        await tx.updateDevice(name, { status: 'revoked' });
        return 'revoked' as const;
      });
      deviceGate.set(name, 'revoked');
      deps.channels?.disconnect(name, 'revoked');
      return { name, status: 'revoked', action };
    },
  );
}

function enrollTokenView(
  t: { id: string; description: string; createdAt: string; expiresAt: string | null; revokedAt: string | null; site?: string | null; maxUses?: number | null; uses?: number; autoAccept?: boolean },
  nowMs: number,
) {
  const usedUp = t.maxUses != null && (t.uses ?? 0) >= t.maxUses;
  return {
    ...tokenView({ ...t, role: 'enroll' }, nowMs),
    ...(usedUp && !t.revokedAt ? { state: 'used-up' } : {}),
    site: t.site ?? null,
    uses: t.uses ?? 0,
    maxUses: t.maxUses ?? null,
    autoAccept: t.autoAccept ?? true,
  };
}
