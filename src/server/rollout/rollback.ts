import { DriftlessError } from '../../protocol/errors.ts';
import type { Store } from '../store/store.ts';
import { machineOf, type RolloutEngine } from './rollout-engine.ts';

export type RollbackOutcome = { action: 'aborted' | 'released'; revision: number; rollout: string; devices: readonly string[] | 'all' };

/**
 * `rollback deployment NAME [--to-revision N]`. While a rollout runs (or stands halted), rolling
 * back to where it came from aborts it: the devices it reached go straight back. Otherwise the
 * chosen earlier revision (by default the one before the stable one) becomes a new revision and
 * rolls out like any change, wave by wave: history only moves forward.
 */
export async function rollbackDeployment(store: Store, engine: RolloutEngine, name: string, toRevision: number | undefined, nowMs: number): Promise<RollbackOutcome> {
  const deployment = await store.getDeployment(name);
  if (!deployment) throw new DriftlessError('not-found', `deployment "${name}" not found`);
  const running = (await store.listRollouts(name)).find((r) => {
    const phase = machineOf(r)?.phase;
    return phase === 'progressing' || phase === 'paused' || phase === 'halted' || phase === 'rolling-back';
  });
  if (running && (toRevision === undefined || toRevision === running.fromRevision)) {
    const devices = await engine.command(store, running.name, { kind: 'abort', by: 'rollback' }, nowMs);
    return { action: 'aborted', revision: running.fromRevision ?? 0, rollout: running.name, devices };
  }
  const revisions = await store.listRevisions(name);
  const target = toRevision ?? [...revisions].reverse().find((r) => r.revision < deployment.targetRevision)?.revision;
  if (target === undefined) throw new DriftlessError('conflict', `deployment "${name}" has no revision before ${deployment.targetRevision} to roll back to`);
  const record = revisions.find((r) => r.revision === target);
  if (!record) {
    throw new DriftlessError('not-found', `deployment "${name}" has no revision ${target} (revisions: ${revisions.map((r) => r.revision).join(', ')})`);
  }
  const nowIso = new Date(nowMs).toISOString();
  const revision = deployment.revision + 1;
  await store.insertRevision({ deployment: name, revision, templateHash: record.templateHash, template: record.template, createdAt: nowIso });
  const updated = { ...deployment, spec: { ...deployment.spec, template: record.template }, revision, updatedAt: nowIso };
  await store.putDeployment(updated);
  await engine.release(store, updated, revision, nowIso);
  return { action: 'released', revision, rollout: `${name}-${revision}`, devices: 'all' };
}
