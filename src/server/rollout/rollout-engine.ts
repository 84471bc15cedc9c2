import type { ComponentStatus } from '../../protocol/messages.ts';
import type { RolloutView, SiteSpec } from '../../protocol/resources.ts';
import { selectorMatches } from '../../protocol/selectors.ts';
import type { DeploymentTarget } from '../desired/compute.ts';
import { groupBy, type DeploymentRecord, type DeviceRecord, type IncidentRecord, type ReleaseRecord, type RolloutRecord, type Store } from '../store/store.ts';
import { advance, command, initialState, waveViews, type Command, type DeviceObservation, type MachineState, type Phase } from './machine.ts';
import { normalizeStrategy, windowOpen } from './waves.ts';

/**
 * The rollout engine stands between "a Deployment has a new revision" and "a device's desired
 * state changes". It keeps one state machine per Rollout (machine.ts) in the store and, on each
 * tick, feeds it what the devices report and carries out what it decides: which devices get the
 * new revision, which go back, when the new revision becomes the stable one. Progress lives in
 * stored state, so a server restart resumes exactly where it was.
 */
export type RolloutEngine = {
  /**
   * A Deployment (already stored) got a new revision: supersede the running Rollout, start a new
   * one and take its first step (so the first wave goes out now). Runs in the caller's transaction;
   * returns the devices touched.
   */
  release(store: Store, deployment: DeploymentRecord, revision: number, nowIso: string): Promise<string[]>;
  /** What each Deployment releases to each device, for the desired-state computation. */
  targets(store: Store): Promise<DeploymentTarget[]>;
  /** Advances every unfinished Rollout once; returns the devices whose desired state may have changed. */
  tick(store: Store, nowMs: number): Promise<string[]>;
  /** The Rollouts a tick advances, by name: each can then be advanced in a transaction of its own (tickOne). */
  unfinished(store: Store): Promise<string[]>;
  /** Advances one Rollout once, if it is unfinished; returns the devices whose desired state may have changed. */
  tickOne(store: Store, rollout: string, nowMs: number): Promise<string[]>;
  /** pause, resume or abort a Rollout; returns the devices whose desired state may have changed. */
  command(store: Store, rollout: string, cmd: Command, nowMs: number): Promise<string[]>;
};

export type EngineDeps = { isOnline: (device: DeviceRecord) => boolean };

export function rolloutName(deployment: string, revision: number): string {
  return `${deployment}-${revision}`;
}

const activePhases: readonly Phase[] = ['progressing', 'paused', 'halted', 'rolling-back'];
/**
 * Rollouts still deciding something, by their state column: `pending` (not started) and what the
 * active phases show as (viewState). A finished rollout is passed over without parsing its machine;
 * the dashboard counts the devices of an active one as updating.
 */
export const activeRolloutStates: ReadonlySet<string> = new Set(['pending', ...activePhases.map(viewState)]);

/** The state in the API's words: the machine's `rolling-back` shows as `halted` until the rollback is done. */
function viewState(phase: Phase): RolloutView['state'] {
  return phase === 'rolling-back' ? 'halted' : phase;
}

export function machineOf(record: RolloutRecord): MachineState | null {
  return record.machine && typeof record.machine === 'object' ? (record.machine as MachineState) : null;
}

export function createRolloutEngine(deps: EngineDeps): RolloutEngine {
  async function observe(store: Store, deployment: DeploymentRecord, rollout: RolloutRecord, nowMs: number): Promise<DeviceObservation[]> {
    const sites = new Map((await store.listSites()).map((s) => [s.name, s]));
    const devices = (await store.listDevices()).filter((d) => d.status === 'accepted' && selectorMatches(deployment.spec.selector, d));
    const reports = groupBy(
      (await store.listComponents()).filter((c) => c.deployment === deployment.name),
      (c) => c.device,
    );
    const template = await store.getRevision(deployment.name, rollout.revision);
    const releases = new Map((await store.listReleases(deployment.name)).map((r) => [r.device, r.revision]));
    const componentCount = template?.template.components.length ?? 1;
    // Each site's window is judged once per tick, not once per device.
    const openBySite = new Map<string | null, boolean>();
    const siteWindowOpen = (name: string | null, spec: SiteSpec) => {
      let open = openBySite.get(name);
      if (open === undefined) openBySite.set(name, (open = windowOpen(spec.maintenanceWindows, spec.timeZone, nowMs)));
      return open;
    };
    return devices.map((d) => {
      const site = d.site ? sites.get(d.site) : undefined;
      const spec: SiteSpec = site?.spec ?? {};
      return {
        name: d.name,
        site: d.site,
        region: spec.region ?? site?.labels.region ?? d.labels.region ?? null,
        hardware: d.labels.hardware ?? (typeof d.facts.hardware === 'string' ? d.facts.hardware : null) ?? (typeof d.facts.arch === 'string' ? d.facts.arch : null),
        online: deps.isOnline(d),
        onNew: verdictOn(reports.get(d.name) ?? [], rollout.revision, componentCount),
        // After a revert the device's release says where it went back to; without one, the stable revision.
        healthyOnPrevious: healthyOn(reports.get(d.name) ?? [], releases.get(d.name) ?? rollout.fromRevision),
        windowOpen: siteWindowOpen(d.site, spec),
      };
    });
  }

  /** Stores the machine's new state and carries out its actions; returns the devices touched. */
  async function save(store: Store, rollout: RolloutRecord, deployment: DeploymentRecord, state: MachineState, actions: ReturnType<typeof advance>['actions'], fleet: number, nowMs: number): Promise<string[]> {
    const nowIso = new Date(nowMs).toISOString();
    const strategy = normalizeStrategy(deployment.spec.strategy);
    const touched = [...actions.release, ...actions.revert];
    // Read only when something is released or reverted: most ticks change nothing.
    const held = touched.length > 0 ? new Map((await store.listReleases(deployment.name)).map((r) => [r.device, r])) : new Map<string, ReleaseRecord>();
    if (actions.release.length > 0) {
      const releases = actions.release.map((device) => ({ deployment: deployment.name, device, revision: rollout.revision, rollout: rollout.name, releasedAt: nowIso, previousRevision: held.get(device)?.revision ?? null }));
      await store.putReleases(releases);
    }
    if (actions.revert.length > 0) {
      // Back to what each device ran before this rollout reached it: an earlier rollout's revision, or the stable one.
      const back = actions.revert.flatMap((device) => {
        const previous = held.get(device)?.previousRevision;
        return previous ? [{ deployment: deployment.name, device, revision: previous, rollout: rollout.name, releasedAt: nowIso, previousRevision: null }] : [];
      });
      await store.putReleases(back);
      await store.deleteReleases(deployment.name, actions.revert.filter((device) => !back.some((b) => b.device === device)));
    }
    if (actions.complete) {
      touched.push(...(await store.listReleases(deployment.name)).map((r) => r.device));
      await store.putDeployment({ ...deployment, targetRevision: rollout.revision, updatedAt: nowIso });
      await store.deleteReleases(deployment.name);
    }
    const changed = JSON.stringify(state) !== JSON.stringify(rollout.machine);
    const next: RolloutRecord = { ...rollout, state: viewState(state.phase), reason: state.reason, waves: waveViews(state, strategy, fleet), machine: state, updatedAt: changed ? nowIso : rollout.updatedAt };
    if (changed) await store.putRollout(next);
    await recordIncident(store, next, state, actions.openIncident, nowIso);
    return touched;
  }

  async function step(store: Store, rollout: RolloutRecord, nowMs: number, cmd: Command | null): Promise<string[]> {
    const deployment = await store.getDeployment(rollout.deployment);
    const machine = machineOf(rollout);
    if (!deployment || !machine) return [];
    const devices = await observe(store, deployment, rollout, nowMs);
    const before = cmd ? command(machine, cmd, nowMs) : machine;
    const { state, actions } = advance(before, { now: nowMs, devices }, normalizeStrategy(deployment.spec.strategy));
    // An operator's abort is an incident too: it stopped a rollout part-way.
    if (cmd?.kind === 'abort' && machine.phase !== 'rolling-back' && state.phase === 'rolling-back') actions.openIncident = true;
    return save(store, rollout, deployment, state, actions, devices.length, nowMs);
  }

  const engine: RolloutEngine = {
    async release(store, deployment, revision, nowIso) {
      const nowMs = Date.parse(nowIso);
      for (const earlier of await store.listRollouts(deployment.name)) {
        if (!activeRolloutStates.has(earlier.state)) continue;
        const machine = machineOf(earlier);
        if (!machine || !activePhases.includes(machine.phase)) continue;
        const superseded: MachineState = { ...machine, phase: 'superseded', reason: `superseded by revision ${revision}`, timeline: [...machine.timeline, { at: nowMs, message: `superseded by revision ${revision}` }] };
        const record: RolloutRecord = { ...earlier, state: 'superseded', reason: superseded.reason, machine: superseded, updatedAt: nowIso };
        await store.putRollout(record);
        // A halted rollout's incident ends with it: the new revision is what happens next.
        await recordIncident(store, record, superseded, false, nowIso);
      }
      // Devices an unfinished rollout reached go back to the stable revision: no device is left on a
      // revision no rollout watches any more (the new rollout reaches them in its own waves). With no
      // stable revision yet (a Deployment's first), they keep what they run rather than lose it.
      const stale = deployment.targetRevision > 0 ? (await store.listReleases(deployment.name)).map((r) => r.device) : [];
      if (stale.length > 0) await store.deleteReleases(deployment.name);
      const fromRevision = deployment.targetRevision > 0 ? deployment.targetRevision : null;
      const machine = initialState(nowMs, revision, fromRevision, rolloutName(deployment.name, revision));
      const record: RolloutRecord = {
        name: rolloutName(deployment.name, revision),
        deployment: deployment.name,
        revision,
        fromRevision,
        machine,
        state: 'progressing',
        reason: null,
        waves: waveViews(machine, normalizeStrategy(deployment.spec.strategy), 0),
        createdAt: nowIso,
        updatedAt: nowIso,
      };
      await store.putRollout(record);
      return [...stale, ...(await step(store, record, nowMs, null))];
    },

    async targets(store) {
      const out: DeploymentTarget[] = [];
      const releases = groupBy(await store.listReleases(), (r) => r.deployment);
      for (const deployment of await store.listDeployments()) {
        const templates = new Map<number, DeploymentTarget extends { releaseFor(d: string): infer R } ? NonNullable<R> : never>();
        const load = async (revision: number) => {
          if (revision <= 0 || templates.has(revision)) return;
          const record = await store.getRevision(deployment.name, revision);
          if (record) templates.set(revision, { revision, template: record.template });
        };
        await load(deployment.targetRevision);
        const released = new Map((releases.get(deployment.name) ?? []).map((r) => [r.device, r.revision]));
        for (const revision of new Set(released.values())) await load(revision);
        const stable = templates.get(deployment.targetRevision) ?? null;
        out.push({
          name: deployment.name,
          selector: deployment.spec.selector,
          releaseFor: (device) => {
            const revision = released.get(device);
            return (revision === undefined ? stable : templates.get(revision)) ?? null;
          },
        });
      }
      return out;
    },

    async tick(store, nowMs) {
      const touched: string[] = [];
      for (const name of await engine.unfinished(store)) touched.push(...(await engine.tickOne(store, name, nowMs)));
      return touched;
    },

    async unfinished(store) {
      return (await store.listRollouts()).filter((r) => activeRolloutStates.has(r.state)).map((r) => r.name);
    },

    async tickOne(store, name, nowMs) {
      const rollout = await store.getRollout(name);
      const machine = rollout && activeRolloutStates.has(rollout.state) ? machineOf(rollout) : null;
      return rollout && machine && activePhases.includes(machine.phase) ? step(store, rollout, nowMs, null) : [];
    },

    async command(store, name, cmd, nowMs) {
      const rollout = await store.getRollout(name);
      if (!rollout) return [];
      return step(store, rollout, nowMs, cmd);
    },
  };
  return engine;
}

/** A device's verdict on a revision, from its component reports: failed if any failed, healthy if all are. */
export function verdictOn(reports: readonly ComponentStatus[], revision: number, componentCount: number): DeviceObservation['onNew'] {
  const mine = reports.filter((c) => c.desiredRevision === revision);
  const failed = mine.find((c) => c.state === 'failed' || c.state === 'reverted');
  if (failed) return { verdict: 'failed', detail: `${failed.name}: ${failed.detail ?? failed.reason ?? failed.state}` };
  if (mine.length >= componentCount && mine.every((c) => c.state === 'healthy')) return { verdict: 'healthy', detail: null };
  return { verdict: 'pending', detail: null };
}

function healthyOn(reports: readonly ComponentStatus[], revision: number | null): boolean {
  if (revision === null) return reports.length === 0;
  const mine = reports.filter((c) => c.desiredRevision === revision);
  return mine.length > 0 && mine.length === reports.length && mine.every((c) => c.state === 'healthy');
}

/** An incident opens when a rollout halts, follows its timeline, and resolves when the rollback is done or a newer revision supersedes it. */
async function recordIncident(store: Store, rollout: RolloutRecord, state: MachineState, open: boolean, nowIso: string): Promise<void> {
  const id = `${rollout.name}-incident`;
  const existing = await store.getIncident(id);
  if (!existing && !open) return;
  const timeline = state.timeline.map((t) => ({ at: new Date(t.at).toISOString(), message: t.message }));
  const resolved = state.phase === 'rolled-back' || state.phase === 'superseded';
  const incident: IncidentRecord = {
    id,
    rollout: rollout.name,
    deployment: rollout.deployment,
    state: resolved ? 'resolved' : 'open',
    title: existing?.title ?? `Rollout ${rollout.name} ${state.reason ?? 'halted: threshold crossed'}`,
    timeline,
    openedAt: existing?.openedAt ?? nowIso,
    closedAt: resolved ? (existing?.closedAt ?? nowIso) : null,
  };
  if (!existing || JSON.stringify(existing) !== JSON.stringify(incident)) await store.putIncident(incident);
}
