import type { KeyObject } from 'node:crypto';
import { artifactProblem } from '../../protocol/artifacts.ts';
import type { ComponentStatus, DesiredComponent, DeviceEvent } from '../../protocol/messages.ts';
import { instanceKey } from '../drivers/driver.ts';
import { readJson, writeJson, type Storage } from '../storage/storage.ts';
import type { SlotBackend } from './file-backend.ts';
import type { LauncherMessage } from './launcher.ts';
import { contentOf, installTarget, type SlotName, type SlotsState } from './slots.ts';

/**
 * The agent's side of its own A/B update. Each pass it reports what the launcher did (a failed
 * trial, a committed one: each exactly once, remembered in the agent's storage), and when the
 * trusted desired state names another agent release than the one running, it downloads it,
 * verifies digest and signature, writes it to the install slot, verifies it there, and asks the
 * launcher to switch. The launcher alone decides the slots; this module only reads their state.
 */
export type SelfUpdateContext = {
  desired: readonly DesiredComponent[];
  fetchArtifact(sha256: string): Promise<Buffer>;
  /** The key artifacts must be signed with (the pinned server key, until releases have their own). */
  trustedKey: KeyObject;
  /** The agent's own storage: where the reported failures and commits are remembered. */
  storage: Storage;
  emit(event: Omit<DeviceEvent, 'seq' | 'at'>): void;
};

export type SelfUpdate = {
  pass(ctx: SelfUpdateContext): Promise<void>;
  /** The agent made a whole successful pass (pulled, reconciled, reported): a trial says it is healthy. */
  passed(): void;
  /** The status of the agent component, if the desired state has one. */
  statuses(desired: readonly DesiredComponent[], since: (key: string, state: string) => string): ComponentStatus[];
};

export type SelfUpdateDeps = {
  readState(): SlotsState;
  backend: SlotBackend;
  /** The slot this agent runs from (null: the factory install). */
  runningSlot: SlotName | null;
  runningVersion: string;
  /** The launcher's channel; null when the agent runs without a launcher and so cannot update itself. */
  launcher: { send(message: LauncherMessage): void } | null;
  now?: () => number;
  log?: (line: string) => void;
  /** A download or verification that failed is tried again after this long. */
  retryMs?: number;
};

const REPORTED = 'self-update.json';
type Reported = { failure: string | null; commit: string | null };
const isReported = (v: unknown): v is Reported => typeof v === 'object' && v !== null && 'failure' in v && 'commit' in v;

export function createSelfUpdate(deps: SelfUpdateDeps): SelfUpdate {
  const now = deps.now ?? Date.now;
  const log = deps.log ?? (() => undefined);
  const retryMs = deps.retryMs ?? 60_000;
  let problem: { sha256: string; atMs: number; message: string } | null = null;
  let switchedTo: string | null = null;
  let saidHealthy = false;

  const agentComponent = (desired: readonly DesiredComponent[]) => desired.find((c) => c.agent);
  const runningSha = (state: SlotsState) => contentOf(state, deps.runningSlot)?.sha256 ?? null;

  /** Each failure and each commit the launcher recorded is told to the server once. */
  function reportLauncher(state: SlotsState, ctx: SelfUpdateContext): void {
    const reported = readJson(ctx.storage, REPORTED, isReported) ?? { failure: null, commit: null };
    const wanted = agentComponent(ctx.desired);
    const component = wanted ? { component: instanceKey(wanted.deployment, wanted.name) } : {};
    const failure = state.lastFailure;
    const committed = deps.runningSlot !== null && state.committed === deps.runningSlot && !state.trial ? runningSha(state) : null;
    if (failure && failure.id !== reported.failure) {
      // Emitted (durably, into the outbox) before it is marked reported: a crash between the two repeats it, never loses it.
      ctx.emit({ type: 'agent-update-failed', ...component, message: `agent version ${failure.version} ${failure.reason}; the device returned to version ${deps.runningVersion} by itself` });
      writeJson(ctx.storage, REPORTED, { ...reported, failure: failure.id });
    }
    if (committed && committed !== reported.commit) {
      ctx.emit({ type: 'agent-updated', ...component, message: `agent updated to version ${deps.runningVersion} (slot ${deps.runningSlot})` });
      writeJson(ctx.storage, REPORTED, { ...(readJson(ctx.storage, REPORTED, isReported) ?? reported), commit: committed });
    }
  }

  return {
    async pass(ctx) {
      const state = deps.readState();
      reportLauncher(state, ctx);
      const wanted = agentComponent(ctx.desired);
      const ref = wanted?.artifact;
      if (!wanted || !ref || !deps.launcher) return;
      if (ref.sha256 === runningSha(state) || ref.sha256 === switchedTo) return;
      if (state.lastFailure?.sha256 === ref.sha256) return;
      if (problem?.sha256 === ref.sha256 && now() - problem.atMs < retryMs) return;
      const slot = installTarget(state);
      if (slot === null) return;
      try {
        if (deps.backend.digest(slot) !== ref.sha256) {
          const bytes = await ctx.fetchArtifact(ref.sha256);
          const refusal = artifactProblem(ref, bytes, ctx.trustedKey);
          if (refusal) throw new Error(refusal);
          deps.backend.install(slot, bytes);
          const written = deps.backend.digest(slot);
          if (written !== ref.sha256) throw new Error(`slot ${slot} reads back ${written ?? 'nothing'} after writing ${ref.sha256}`);
        }
      } catch (error) {
        problem = { sha256: ref.sha256, atMs: now(), message: (error as Error).message };
        log(`agent update to version ${ref.version} not installed: ${problem.message}`);
        return;
      }
      problem = null;
      switchedTo = ref.sha256;
      log(`agent version ${ref.version} written to slot ${slot} and verified; asking the launcher to switch`);
      deps.launcher.send({ type: 'switch', slot, version: ref.version, sha256: ref.sha256 });
    },

    passed() {
      if (saidHealthy || !deps.launcher || deps.runningSlot === null) return;
      if (deps.readState().trial?.slot !== deps.runningSlot) return;
      saidHealthy = true;
      log(`agent version ${deps.runningVersion} on trial in slot ${deps.runningSlot}: healthy`);
      deps.launcher.send({ type: 'healthy' });
    },

    statuses(desired, since) {
      const wanted = agentComponent(desired);
      if (!wanted) return [];
      const state = deps.readState();
      const key = instanceKey(wanted.deployment, wanted.name);
      const sha = wanted.artifact?.sha256 ?? wanted.agent!.artifact;
      const status = (s: ComponentStatus['state'], reason: string | null, detail: string | null): ComponentStatus => ({
        name: wanted.name,
        deployment: wanted.deployment,
        desiredVersion: wanted.version,
        desiredRevision: wanted.revision,
        version: deps.runningVersion,
        state: s,
        reason,
        detail,
        since: since(key, `${s}:${reason}:${sha}`),
      });
      if (!wanted.artifact) return [status('failed', 'download-failed', `the server has no artifact ${sha}`)];
      if (sha === runningSha(state)) {
        return [state.trial?.slot === deps.runningSlot ? status('applying', 'applying', `version ${wanted.version} is on trial`) : status('healthy', null, null)];
      }
      if (!deps.launcher) return [status('failed', 'start-failed', `this agent runs without \`driftless launcher\`, so it cannot switch to version ${wanted.version}`)];
      const failure = state.lastFailure;
      if (failure?.sha256 === sha) return [status('reverted', 'start-failed', `agent version ${failure.version} ${failure.reason}; reverted to version ${deps.runningVersion}`)];
      if (problem?.sha256 === sha) return [status('failed', 'download-failed', problem.message)];
      return [status('applying', 'applying', `updating the agent to version ${wanted.version}`)];
    },
  };
}
