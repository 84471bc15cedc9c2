import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_VERSION, createAgent, MIN_OUTBOX_QUOTA, type Agent } from '../agent/create-agent.ts';
import { createContainerDriver } from '../agent/drivers/container/container-driver.ts';
import { createProcessDriver } from '../agent/drivers/process/process-driver.ts';
import { defaultDeviceName } from '../agent/enroll/identity.ts';
import { createFileSlotBackend, readSlotsState } from '../agent/slots/file-backend.ts';
import { createSelfUpdate, type SelfUpdate } from '../agent/slots/self-update.ts';
import { deviceChannel } from '../agent/terminal/device-channel.ts';
import { DriftlessError } from '../protocol/errors.ts';
import { fetchTrusting, readCaFile } from '../protocol/tls-trust.ts';
import type { Transport } from '../agent/create-agent.ts';
import { Labels, Name } from '../protocol/resources.ts';
import { isValid } from '../protocol/validate.ts';
import { parsePositiveSeconds } from './server-command.ts';

export type AgentFlags = {
  server: string;
  enrollToken: string;
  /** A CA certificate file to trust for an https:// server. */
  ca?: string;
  data?: string;
  name?: string;
  site?: string;
  label: string[];
  pollInterval?: string;
  reconcileInterval?: string;
  outboxQuota?: string;
  /** False with `--no-remote-shell`: the device refuses remote terminals and exec. */
  remoteShell?: boolean;
};

/** A size such as 65536, 512KiB, 64MiB or 1GiB, in bytes. */
export function parseSize(flag: string, text: string): number {
  const match = /^([0-9]+)\s*(|B|KiB|MiB|GiB|K|M|G)$/i.exec(text.trim());
  const unit = match?.[2]?.toLowerCase().replace(/ib$/, '').replace(/^b$/, '') ?? '';
  const bytes = match ? Number(match[1]) * ({ '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[unit] ?? Number.NaN) : Number.NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new DriftlessError('invalid-input', `${flag}: "${text}" is not a size (say 65536, 512KiB, 64MiB)`);
  return bytes;
}

export function parseLabels(pairs: readonly string[]): Labels {
  const labels: Labels = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    const key = pair.slice(0, eq);
    if (eq <= 0 || !isValid(Labels, { [key]: pair.slice(eq + 1) })) throw new DriftlessError('invalid-input', `--label: "${pair}" is not key=value`);
    labels[key] = pair.slice(eq + 1);
  }
  return labels;
}

/** A file of this name in the agent's data directory makes the device refuse remote shells and exec. */
export const NO_REMOTE_SHELL_FILE = 'no-remote-shell';

/** Requests that trust the server's own certificate (`--ca`), for every call the agent makes. */
export function caTransport(caFile: string | undefined): { transport?: Transport } {
  if (!caFile) return {};
  return { transport: fetchTrusting(readCaFile(caFile, '--ca')) };
}

/** Builds an agent from command-line flags, with both runtime drivers and its channel to the server. */
export function agentFromFlags(flags: AgentFlags, log: (line: string) => void): Agent {
  const name = flags.name ?? defaultDeviceName();
  if (!isValid(Name, name)) throw new DriftlessError('invalid-input', `--name: "${name}" must be lower-case letters, digits, "-" or ".", at most 63 characters`);
  if (flags.site !== undefined && !isValid(Name, flags.site)) throw new DriftlessError('invalid-input', `--site: "${flags.site}" must be lower-case letters, digits, "-" or "."`);
  try {
    new URL(flags.server);
  } catch {
    throw new DriftlessError('invalid-input', `--server: "${flags.server}" is not a URL`);
  }
  const dataDir = flags.data ?? join(process.cwd(), '.driftless-agent');
  const caFile = flags.ca ?? process.env.DRIFTLESS_CA;
  const pollSeconds = flags.pollInterval === undefined ? undefined : parsePositiveSeconds('--poll-interval', flags.pollInterval, 30);
  const outboxQuotaBytes = flags.outboxQuota === undefined ? undefined : parseSize('--outbox-quota', flags.outboxQuota);
  if (outboxQuotaBytes !== undefined && outboxQuotaBytes < MIN_OUTBOX_QUOTA) {
    throw new DriftlessError('invalid-input', `--outbox-quota: must be at least ${MIN_OUTBOX_QUOTA / 1024}KiB`);
  }
  const version = process.env.DRIFTLESS_AGENT_VERSION ?? AGENT_VERSION;
  return createAgent({
    dataDir,
    version,
    serverUrl: flags.server,
    ...caTransport(caFile),
    enrollToken: flags.enrollToken,
    name,
    ...(flags.site ? { site: flags.site } : {}),
    labels: parseLabels(flags.label),
    drivers: {
      container: createContainerDriver({ agentId: name, ...(process.env.DOCKER_HOST ? { dockerHost: process.env.DOCKER_HOST } : {}), log }),
      process: createProcessDriver({ agentId: name, dataDir, log }),
    },
    log,
    selfUpdate: selfUpdateFromEnv(process.env, dataDir, log),
    // Remote shells can also be switched off on the device, without a restart, by a file in the data directory.
    channel: deviceChannel({
      remoteShell: () => flags.remoteShell !== false && !existsSync(join(dataDir, NO_REMOTE_SHELL_FILE)),
      agentVersion: version,
      log,
      ...(caFile ? { ca: readCaFile(caFile, '--ca') } : {}),
    }),
    ...(pollSeconds !== undefined ? { pollSeconds } : {}),
    ...(outboxQuotaBytes !== undefined ? { outboxQuotaBytes } : {}),
    reconcileSeconds: parsePositiveSeconds('--reconcile-interval', flags.reconcileInterval, 5),
  });
}

/**
 * The agent's own update. Under `driftless launcher` the environment names the slots directory,
 * the slot this agent was booted from and its version, and the IPC channel reaches the launcher;
 * without a launcher the agent reports that it cannot update itself.
 */
export function selfUpdateFromEnv(env: NodeJS.ProcessEnv, dataDir: string, log: (line: string) => void): SelfUpdate {
  const slotsDir = env.DRIFTLESS_SLOTS ?? join(dataDir, 'slots');
  const slot = env.DRIFTLESS_SLOT === 'a' || env.DRIFTLESS_SLOT === 'b' ? env.DRIFTLESS_SLOT : null;
  const channel = env.DRIFTLESS_SLOTS && process.send ? process.send.bind(process) : null;
  return createSelfUpdate({
    readState: () => readSlotsState(slotsDir),
    backend: createFileSlotBackend(slotsDir),
    runningSlot: slot,
    runningVersion: env.DRIFTLESS_AGENT_VERSION ?? AGENT_VERSION,
    launcher: channel ? { send: (message) => void channel(message, undefined, {}, (error: Error | null) => error && log(`launcher unreachable: ${error.message}`)) } : null,
    log,
  });
}
