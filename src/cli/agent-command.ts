import { join } from 'node:path';
import { createAgent, type Agent } from '../agent/create-agent.ts';
import { createContainerDriver } from '../agent/drivers/container/container-driver.ts';
import { createProcessDriver } from '../agent/drivers/process/process-driver.ts';
import { defaultDeviceName } from '../agent/enroll/identity.ts';
import { DriftlessError } from '../protocol/errors.ts';
import { Labels, Name } from '../protocol/resources.ts';
import { isValid } from '../protocol/validate.ts';
import { parsePositiveSeconds } from './server-command.ts';

export type AgentFlags = {
  server: string;
  enrollToken: string;
  data?: string;
  name?: string;
  site?: string;
  label: string[];
  pollInterval?: string;
  reconcileInterval?: string;
};

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

/** Builds an agent from command-line flags, with both runtime drivers. */
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
  const pollSeconds = flags.pollInterval === undefined ? undefined : parsePositiveSeconds('--poll-interval', flags.pollInterval, 30);
  return createAgent({
    dataDir,
    serverUrl: flags.server,
    enrollToken: flags.enrollToken,
    name,
    ...(flags.site ? { site: flags.site } : {}),
    labels: parseLabels(flags.label),
    drivers: {
      container: createContainerDriver({ agentId: name, ...(process.env.DOCKER_HOST ? { dockerHost: process.env.DOCKER_HOST } : {}), log }),
      process: createProcessDriver({ agentId: name, dataDir, log }),
    },
    log,
    ...(pollSeconds !== undefined ? { pollSeconds } : {}),
    reconcileSeconds: parsePositiveSeconds('--reconcile-interval', flags.reconcileInterval, 5),
  });
}
