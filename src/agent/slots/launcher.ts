import { spawn, type ChildProcess } from 'node:child_process';
import type { SlotBackend } from './file-backend.ts';
import { beginTrial, bootDecision, commit, contentOf, noteExit, SLOT_NAMES, type SlotName, type SlotsState } from './slots.ts';

/**
 * The launcher: a small, rarely changing process that boots the agent from a slot and is the
 * only writer of the slots state. It persists each boot decision (with the boot attempt counted)
 * before it boots, kills a trial that has not said it is healthy by its deadline, and goes back to
 * the committed slot by itself when a trial runs out of attempts or time: no server is involved.
 *
 * The agent speaks to it over the IPC channel of its process:
 * - `{ type: 'healthy' }` once a trial has made a whole successful pass: the trial is committed;
 * - `{ type: 'switch', slot, version, sha256 }` once the agent has written and verified a release
 *   in the install slot: the launcher begins the trial, stops the agent and boots the trial.
 */
export type LauncherMessage = { type: 'healthy' } | { type: 'switch'; slot: SlotName; version: string; sha256: string };

export type LauncherDeps = {
  state: { load(): SlotsState; save(state: SlotsState): void };
  backend: SlotBackend;
  /** Where the slots live, told to the agent so it can read the state and install releases. */
  slotsDir: string;
  /** How to run the agent the launcher came with (no slot yet, or every update failed). */
  factory: { command: string; args: string[]; version: string };
  /** The agent's own arguments, after `agent`. */
  agentArgs: readonly string[];
  /** Boots a trial gets before it is abandoned. */
  maxAttempts: number;
  /** How long a trial has to say it is healthy. */
  trialMs: number;
  env?: NodeJS.ProcessEnv;
  now?: () => number;
  log?: (line: string) => void;
  /** Pause before booting the committed agent again after it exited on its own. */
  restartDelayMs?: number;
  /** Time a stopped agent gets to exit before it is killed. */
  stopGraceMs?: number;
};

export type Launcher = {
  /** Boots agents until `stop()`. */
  run(): Promise<void>;
  stop(): Promise<void>;
};

export function isLauncherMessage(value: unknown): value is LauncherMessage {
  const m = value as Record<string, unknown> | null;
  if (typeof m !== 'object' || m === null) return false;
  if (m.type === 'healthy') return true;
  return (
    m.type === 'switch' &&
    (SLOT_NAMES as readonly unknown[]).includes(m.slot) &&
    typeof m.version === 'string' &&
    m.version.length > 0 &&
    typeof m.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(m.sha256)
  );
}

export function createLauncher(deps: LauncherDeps): Launcher {
  const now = deps.now ?? Date.now;
  const log = deps.log ?? (() => undefined);
  const graceMs = deps.stopGraceMs ?? 10_000;
  let stopping = false;
  let current: { child: ChildProcess; exited: Promise<string> } | null = null;
  let wake: (() => void) | null = null;

  function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): void {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const escalate = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => clearTimeout(escalate));
  }

  /** Runs one boot of `slot` until the agent exits; returns how it ended and whether to boot again at once. */
  async function boot(slot: SlotName | null, state: SlotsState): Promise<{ how: string; immediately: boolean }> {
    const content = contentOf(state, slot);
    const entry = slot === null ? deps.factory : deps.backend.entry(slot);
    const version = content?.version ?? deps.factory.version;
    const onTrial = state.trial?.slot === slot && slot !== null;
    log(`launcher: booting ${slot === null ? 'the factory agent' : `slot ${slot}`} (version ${version}${onTrial ? `, trial attempt ${state.trial!.bootAttempts}` : ''})`);
    const child = spawn(entry.command, [...entry.args, 'agent', ...deps.agentArgs], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...(deps.env ?? process.env), DRIFTLESS_AGENT_VERSION: version, DRIFTLESS_SLOT: slot ?? 'factory', DRIFTLESS_SLOTS: deps.slotsDir },
    });
    const exited = new Promise<string>((resolve) => {
      child.once('error', (error) => resolve(`could not start: ${error.message}`));
      child.once('exit', (code, signal) => resolve(signal ? `killed by ${signal}` : `exit code ${code}`));
    });
    current = { child, exited };
    let switching = false;
    let timedOut = false;

    const deadline = onTrial
      ? setTimeout(() => {
          timedOut = true;
          log(`launcher: slot ${slot} did not report healthy by its deadline; stopping it`);
          stopChild(child);
        }, Math.max(0, state.trial!.deadlineAt - now()))
      : null;

    child.on('message', (message: unknown) => {
      if (!isLauncherMessage(message)) return log(`launcher: ignored a message from the agent: ${JSON.stringify(message)}`);
      if (message.type === 'healthy') {
        const before = deps.state.load();
        const after = commit(before, slot, now());
        if (after === before) return;
        deps.state.save(after);
        if (deadline) clearTimeout(deadline);
        log(`launcher: committed slot ${slot} (version ${version})`);
        return;
      }
      try {
        const digest = deps.backend.digest(message.slot);
        if (digest !== message.sha256) throw new Error(`slot ${message.slot} holds ${digest ?? 'nothing'}, not ${message.sha256}`);
        deps.state.save(beginTrial(deps.state.load(), message, now(), deps.trialMs));
      } catch (error) {
        return log(`launcher: refused to switch to slot ${message.slot}: ${(error as Error).message}`);
      }
      switching = true;
      log(`launcher: switching to slot ${message.slot} (version ${message.version}); stopping the running agent`);
      stopChild(child);
    });

    const how = await exited;
    if (deadline) clearTimeout(deadline);
    current = null;
    const described = timedOut ? `${how} after missing its deadline` : how;
    // What ended a trial boot is kept for the failure's reason (the state may have moved on: switch, commit).
    const latest = deps.state.load();
    const noted = noteExit(latest, slot, described);
    if (noted !== latest) deps.state.save(noted);
    log(`launcher: the agent (${slot ?? 'factory'}) ended: ${described}`);
    return { how: described, immediately: switching || onTrial || noted.trial !== null };
  }

  return {
    async run() {
      while (!stopping) {
        const decision = bootDecision(deps.state.load(), now(), deps.maxAttempts);
        // The boot counter is durable before the boot: a crash or power cut during it still counts.
        deps.state.save(decision.state);
        if (decision.reverted) {
          log(`launcher: gave up on version ${decision.reverted.version} (slot ${decision.reverted.slot}): ${decision.reverted.reason}; back to ${decision.boot === null ? 'the factory agent' : `slot ${decision.boot}`}`);
        }
        const { immediately } = await boot(decision.boot, decision.state);
        if (stopping || immediately) continue;
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, deps.restartDelayMs ?? 1000);
        });
        wake = null;
      }
    },
    async stop() {
      stopping = true;
      wake?.();
      const running = current;
      if (running) {
        stopChild(running.child);
        await running.exited;
      }
    },
  };
}
