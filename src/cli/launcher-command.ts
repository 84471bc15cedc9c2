import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENT_VERSION } from '../agent/create-agent.ts';
import { createFileSlotBackend, openSlotsState } from '../agent/slots/file-backend.ts';
import { createLauncher } from '../agent/slots/launcher.ts';
import { DriftlessError } from '../protocol/errors.ts';
import { parsePositiveSeconds } from './server-command.ts';

export type LauncherFlags = { data: string; bootAttempts?: string; trialSeconds?: string };

/**
 * `driftless launcher --data DIR -- <agent arguments>`: keeps the agent's two slots and boots the
 * agent from one of them (the agent this program is, before any update), until interrupted.
 */
export async function launcherCommand(flags: LauncherFlags, agentArgs: readonly string[]): Promise<void> {
  if (agentArgs.length === 0) throw new DriftlessError('invalid-input', 'launcher: give the agent\'s arguments after "--", e.g. -- --server URL --enroll-token T');
  if (agentArgs[0] === 'agent') agentArgs = agentArgs.slice(1);
  const attempts = Number(flags.bootAttempts ?? '3');
  if (!Number.isInteger(attempts) || attempts < 1 || attempts > 100) throw new DriftlessError('invalid-input', `--boot-attempts: "${flags.bootAttempts}" is not a whole number from 1 to 100`);
  const trialSeconds = parsePositiveSeconds('--trial-seconds', flags.trialSeconds, 300);
  const dataDir = resolve(flags.data);
  const slotsDir = join(dataDir, 'slots');
  // The agent keeps its state beside the slots unless told otherwise.
  const args = agentArgs.some((a) => a === '--data' || a.startsWith('--data=')) ? [...agentArgs] : [...agentArgs, '--data', dataDir];
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  const launcher = createLauncher({
    state: openSlotsState(slotsDir),
    backend: createFileSlotBackend(slotsDir),
    slotsDir,
    factory: { command: process.execPath, args: ['--disable-warning=ExperimentalWarning', fileURLToPath(new URL('./main.ts', import.meta.url))], version: AGENT_VERSION },
    agentArgs: args,
    maxAttempts: attempts,
    trialMs: trialSeconds * 1000,
    log,
  });
  const running = launcher.run();
  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  await launcher.stop();
  await running;
}
