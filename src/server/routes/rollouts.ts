import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { DriftlessError } from '../../protocol/errors.ts';
import { oneOf, type RolloutView } from '../../protocol/resources.ts';
import type { AppDeps } from '../app.ts';
import { rollbackDeployment } from '../rollout/rollback.ts';
import type { MachineState, SlotStatus } from '../rollout/machine.ts';
import { machineOf } from '../rollout/rollout-engine.ts';
import type { IncidentRecord, RolloutRecord } from '../store/store.ts';

const NameParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 253 }) });
const ActionParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 253 }), action: Type.Union([Type.Literal('pause'), Type.Literal('resume'), Type.Literal('abort')]) });
const RolloutQuery = Type.Object({ deployment: Type.Optional(Type.String({ maxLength: 63 })) }, { additionalProperties: false });
const RollbackBody = Type.Object({ toRevision: Type.Optional(Type.Integer({ minimum: 1 })) }, { additionalProperties: false });

export function rolloutView(r: RolloutRecord): RolloutView {
  return { name: r.name, deployment: r.deployment, revision: r.revision, state: r.state as RolloutView['state'], waves: r.waves, reason: r.reason, createdAt: r.createdAt, updatedAt: r.updatedAt };
}

const DetailQuery = Type.Object(
  // Which devices to list: all (the default), only failed or reverted ones, or none; the waves' counts stay whole.
  { devices: Type.Optional(oneOf(['all', 'failed', 'none'] as const)) },
  { additionalProperties: false },
);
const troubled: ReadonlySet<SlotStatus> = new Set(['failed', 'excused', 'reverted', 'recovered']);

/**
 * Each wave's progress as the dashboard shows it: of its devices, how many updated, failed, are
 * still waiting for their turn or their verdict, and how many of those waiting are offline.
 */
export function waveProgress(machine: MachineState | null, online: (device: string) => boolean) {
  const waves = new Map<number, { index: number; devices: number; updated: number; failed: number; waiting: number; offline: number }>();
  for (const [device, slot] of Object.entries(machine?.slots ?? {})) {
    const wave = waves.get(slot.wave) ?? { index: slot.wave, devices: 0, updated: 0, failed: 0, waiting: 0, offline: 0 };
    wave.devices += 1;
    if (slot.status === 'updated') wave.updated += 1;
    else if (troubled.has(slot.status)) wave.failed += 1;
    else if (online(device)) wave.waiting += 1;
    else wave.offline += 1;
    waves.set(slot.wave, wave);
  }
  return [...waves.values()].sort((a, b) => a.index - b.index);
}

/** A rollout with what `describe rollout` shows: where it came from, its timeline and every device's wave, status and why. */
function rolloutDetail(r: RolloutRecord, incident: IncidentRecord | null, online: (device: string) => boolean, list: 'all' | 'failed' | 'none' = 'all') {
  const machine = machineOf(r);
  const devices = Object.entries(machine?.slots ?? {})
    .filter(([, s]) => list === 'all' || (list === 'failed' && troubled.has(s.status)))
    .map(([device, s]) => ({
      device,
      wave: s.wave + 1,
      status: s.status,
      why: s.why,
      detail: s.detail,
      releasedAt: s.releasedAt === null ? null : new Date(s.releasedAt).toISOString(),
      doneAt: s.doneAt === null ? null : new Date(s.doneAt).toISOString(),
    }))
    .sort((a, b) => a.wave - b.wave || (a.device < b.device ? -1 : 1));
  return {
    ...rolloutView(r),
    fromRevision: r.fromRevision,
    timeline: (machine?.timeline ?? []).map((t) => ({ at: new Date(t.at).toISOString(), message: t.message })),
    progress: waveProgress(machine, online),
    devices,
    incident: incident ? { id: incident.id, state: incident.state, title: incident.title } : null,
  };
}

/** Markdown for a post-incident review: what happened, when, to whom. */
export function incidentMarkdown(incident: IncidentRecord, rollout: RolloutRecord | null): string {
  const lines = [
    `# ${incident.title}`,
    '',
    `- Deployment: ${incident.deployment}`,
    `- Rollout: ${incident.rollout}${rollout ? ` (revision ${rollout.revision}${rollout.fromRevision ? `, from revision ${rollout.fromRevision}` : ''})` : ''}`,
    `- State: ${incident.state}`,
    `- Opened: ${incident.openedAt}${incident.closedAt ? `; resolved: ${incident.closedAt}` : ''}`,
    '',
    '## Timeline (UTC)',
    '',
    '| time | event |',
    '| --- | --- |',
    ...incident.timeline.map((t) => `| ${t.at.replace('T', ' ').replace('Z', '')} | ${t.message.replace(/\|/g, '\\|')} |`),
    '',
  ];
  if (rollout) {
    lines.push('## Waves', '', '| wave | devices | updated | failed | state |', '| --- | --- | --- | --- | --- |');
    for (const w of rollout.waves) lines.push(`| ${w.index + 1} | ${w.devices} | ${w.updated} | ${w.failed} | ${w.state} |`);
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}

/** Rollouts, their operator commands, rollback, and incidents. */
export function registerRolloutRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { store, desired, rollouts } = deps;

  app.get<{ Querystring: Static<typeof RolloutQuery> }>(
    '/v1/rollouts',
    { config: { access: 'viewer' }, schema: { tags: ['rollouts'], summary: 'Rollouts, oldest first', querystring: RolloutQuery } },
    async (request): Promise<RolloutView[]> => (await store.listRollouts(request.query.deployment)).map(rolloutView),
  );

  app.get<{ Params: Static<typeof NameParams>; Querystring: Static<typeof DetailQuery> }>(
    '/v1/rollouts/:name',
    { config: { access: 'viewer' }, schema: { tags: ['rollouts'], summary: "A rollout with its timeline, each wave's progress and its devices", params: NameParams, querystring: DetailQuery } },
    async (request) => {
      const rollout = await store.getRollout(request.params.name);
      if (!rollout) throw new DriftlessError('not-found', `rollout "${request.params.name}" not found`);
      const nowMs = deps.now();
      const devices = new Map((await store.listDevices()).map((d) => [d.name, d]));
      const online = (name: string) => {
        const device = devices.get(name);
        return device !== undefined && deps.presence.isOnline(device, nowMs, deps.offlineAfterMs);
      };
      return rolloutDetail(rollout, await store.getIncident(`${rollout.name}-incident`), online, request.query.devices);
    },
  );

  app.post<{ Params: Static<typeof ActionParams> }>(
    '/v1/rollouts/:name/:action',
    { config: { access: 'operator' }, schema: { tags: ['rollouts'], summary: 'Pause, resume or abort a rollout', params: ActionParams } },
    async (request) => {
      const { name, action } = request.params;
      const rollout = await desired.change(store, async (tx) => {
        const existing = await tx.getRollout(name);
        if (!existing) throw new DriftlessError('not-found', `rollout "${name}" not found`);
        const cmd = action === 'abort' ? { kind: 'abort' as const, by: 'operator' } : { kind: action };
        const devices = await rollouts.command(tx, name, cmd, deps.now());
        return { result: (await tx.getRollout(name))!, devices };
      });
      return rolloutView(rollout);
    },
  );

  app.post<{ Params: Static<typeof NameParams>; Body: Static<typeof RollbackBody> }>(
    '/v1/deployments/:name/rollback',
    { config: { access: 'operator' }, schema: { tags: ['deployments'], summary: 'Roll a Deployment back to an earlier revision', params: NameParams, body: RollbackBody } },
    async (request) =>
      desired.change(store, async (tx) => {
        const outcome = await rollbackDeployment(tx, rollouts, request.params.name, request.body.toRevision, deps.now());
        return { result: { action: outcome.action, revision: outcome.revision, rollout: outcome.rollout }, devices: outcome.devices };
      }),
  );

  app.get('/v1/incidents', { config: { access: 'viewer' }, schema: { tags: ['incidents'], summary: 'Incidents opened by halted rollouts' } }, async () => store.listIncidents());

  app.get<{ Params: Static<typeof NameParams> }>('/v1/incidents/:name', { config: { access: 'viewer' }, schema: { tags: ['incidents'], params: NameParams } }, async (request) => {
    const incident = await store.getIncident(request.params.name);
    if (!incident) throw new DriftlessError('not-found', `incident "${request.params.name}" not found`);
    return incident;
  });

  app.get<{ Params: Static<typeof NameParams> }>(
    '/v1/incidents/:name/markdown',
    { config: { access: 'viewer' }, schema: { tags: ['incidents'], summary: 'The incident as Markdown, for a post-incident review', params: NameParams } },
    async (request, reply) => {
      const incident = await store.getIncident(request.params.name);
      if (!incident) throw new DriftlessError('not-found', `incident "${request.params.name}" not found`);
      return reply.type('text/markdown; charset=utf-8').send(incidentMarkdown(incident, await store.getRollout(incident.rollout)));
    },
  );
}
