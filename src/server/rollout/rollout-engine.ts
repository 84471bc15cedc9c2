import type { ComponentStatus } from '../../protocol/messages.ts';
import { selectorMatches } from '../../protocol/selectors.ts';
import type { DeploymentTarget } from '../desired/compute.ts';
import type { DeploymentRecord, DeviceRecord, RolloutRecord, RolloutWave, Store } from '../store/store.ts';

/**
 * The rollout engine stands between "a Deployment has a new revision" and "a device's desired
 * state changes". It decides which revision each device runs (`targets`) and tracks each
 * Rollout's progress in stored state (`tick`), so a restart resumes where it was.
 *
 * This engine releases a revision to every selected device at once, in one wave; wave-by-wave
 * delivery with health gates replaces `release` and `targets` without changing their callers.
 */
export type RolloutEngine = {
  /** A Deployment got a new revision: record its Rollout and decide who gets it. Runs in the caller's transaction. */
  release(store: Store, deployment: DeploymentRecord, revision: number, nowIso: string): Promise<DeploymentRecord>;
  /** What each Deployment releases to each device, for the desired-state computation. */
  targets(store: Store): Promise<DeploymentTarget[]>;
  /** Recomputes the progress of unfinished Rollouts from device reports and stores what changed. */
  tick(store: Store, nowIso: string): Promise<void>;
};

export function rolloutName(deployment: string, revision: number): string {
  return `${deployment}-${revision}`;
}

export function createRolloutEngine(): RolloutEngine {
  return {
    async release(store, deployment, revision, nowIso) {
      for (const earlier of await store.listRollouts(deployment.name)) {
        if (earlier.state === 'progressing' || earlier.state === 'pending' || earlier.state === 'paused') {
          await store.putRollout({ ...earlier, state: 'superseded', reason: `superseded by revision ${revision}`, updatedAt: nowIso });
        }
      }
      const selected = (await store.listDevices()).filter((d) => d.status === 'accepted' && selectorMatches(deployment.spec.selector, d));
      await store.putRollout({
        name: rolloutName(deployment.name, revision),
        deployment: deployment.name,
        revision,
        state: 'progressing',
        reason: null,
        waves: [{ index: 0, devices: selected.length, updated: 0, failed: 0, state: 'progressing' }],
        createdAt: nowIso,
        updatedAt: nowIso,
      });
      return { ...deployment, targetRevision: revision };
    },

    async targets(store) {
      const out: DeploymentTarget[] = [];
      for (const deployment of await store.listDeployments()) {
        const release = await store.getRevision(deployment.name, deployment.targetRevision);
        if (!release) continue;
        const chosen = { revision: release.revision, template: release.template };
        out.push({ name: deployment.name, selector: deployment.spec.selector, releaseFor: () => chosen });
      }
      return out;
    },

    async tick(store, nowIso) {
      const open = (await store.listRollouts()).filter((r) => r.state === 'progressing');
      if (open.length === 0) return;
      const devices = (await store.listDevices()).filter((d) => d.status === 'accepted');
      const reports = await store.listComponents();
      for (const rollout of open) {
        const deployment = await store.getDeployment(rollout.deployment);
        const revision = await store.getRevision(rollout.deployment, rollout.revision);
        if (!deployment || !revision) continue;
        const next = progressOf(rollout, deployment, revision.template.version, devices, reports, nowIso);
        if (JSON.stringify(next) !== JSON.stringify(rollout)) await store.putRollout(next);
      }
    },
  };
}

/** Pure: a one-wave Rollout's counts from what its devices report. Complete when every selected device runs the revision healthily. */
export function progressOf(
  rollout: RolloutRecord,
  deployment: DeploymentRecord,
  version: string,
  devices: readonly DeviceRecord[],
  reports: readonly (ComponentStatus & { device: string })[],
  nowIso: string,
): RolloutRecord {
  const selected = devices.filter((d) => selectorMatches(deployment.spec.selector, d)).map((d) => d.name);
  let updated = 0;
  let failed = 0;
  for (const device of selected) {
    const mine = reports.filter((c) => c.device === device && c.deployment === deployment.name && c.desiredVersion === version);
    if (mine.length === 0) continue;
    if (mine.some((c) => c.state === 'failed' || c.state === 'reverted')) failed++;
    else if (mine.every((c) => c.state === 'healthy' && c.version === version)) updated++;
  }
  const done = selected.length > 0 && updated === selected.length;
  const wave: RolloutWave = { index: 0, devices: selected.length, updated, failed, state: done ? 'complete' : 'progressing' };
  const reason = failed > 0 ? `${failed} of ${selected.length} devices failed and reverted` : null;
  const same = rollout.waves.length === 1 && JSON.stringify(rollout.waves[0]) === JSON.stringify(wave) && rollout.reason === reason;
  if (same) return rollout;
  return { ...rollout, waves: [wave], state: done ? 'complete' : 'progressing', reason, updatedAt: nowIso };
}
