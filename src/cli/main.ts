import { Command, CommanderError, Option } from 'commander';
import { DriftlessError } from '../protocol/errors.ts';
import { agentFromFlags, type AgentFlags } from './agent-command.ts';
import { artifactListCommand, artifactPushCommand } from './artifact-command.ts';
import { launcherCommand, type LauncherFlags } from './launcher-command.ts';
import { createApi } from './api-client.ts';
import { resolveConnection } from './config.ts';
import { demoCommand } from './demo-command.ts';
import { logsCommand } from './logs-command.ts';
import { parseOutputFormat } from './output.ts';
import { applyCommand, describeCommand, driftCommand, getCommand } from './resources.ts';
import { incidentCommand, rollbackCommand, rolloutActionCommand, rolloutStatusCommand } from './rollout-command.ts';
import { serverCommand, type ServerFlags } from './server-command.ts';

/** The one `driftless` program: server, agent and the operator's CLI. */
function buildProgram(): Command {
  const program = new Command('driftless')
    .description('Edge fleet orchestrator: deploy, update, watch and repair software across edge devices.')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text.startsWith('error:') ? `driftless: ${text.slice(7)}` : text) });
  /** An operator command: it talks to the server's API, found from flags, environment or config file. */
  const client = (name: string) =>
    program
      .command(name)
      .option('--server <url>', 'server URL (else DRIFTLESS_SERVER, else the local config file)')
      .option('--token <token>', 'API token (else DRIFTLESS_TOKEN, else the local config file)');
  const api = (flags: { server?: string; token?: string }) => createApi(resolveConnection(flags));

  program
    .command('server')
    .description('run the management plane')
    .option('--data <dir>', 'data directory', '.driftless-server')
    .option('--listen <host:port>', 'address to listen on', '0.0.0.0:7480')
    .option('--database <url>', 'database URL (default: embedded SQLite in the data directory)')
    .option('--admin-token <token>', 'the first admin token (default: generated and printed once)')
    .option('--enroll-token <token>', 'the fleet bootstrap enrollment token (default: generated and printed once)')
    .option('--poll-interval <seconds>', 'how often agents poll for desired state', '30')
    .action(async (flags: ServerFlags) => {
      const server = await serverCommand(flags);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await server.close();
    });

  program
    .command('agent')
    .description('run the device agent')
    .requiredOption('--server <url>', 'management server URL')
    .requiredOption('--enroll-token <token>', 'enrollment token (used only to join)')
    .option('--data <dir>', 'data directory (default: ./.driftless-agent)')
    .option('--name <name>', 'device name (default: host name)')
    .option('--site <site>', 'site the device belongs to')
    .option('--label <key=value>', 'device label (repeatable)', (value: string, all: string[]) => [...all, value], [] as string[])
    .option('--poll-interval <seconds>', 'seconds between desired-state polls (default: the server advises)')
    .option('--reconcile-interval <seconds>', 'seconds between local drift checks', '5')
    .option('--outbox-quota <size>', 'disk the telemetry outbox may use before dropping its oldest records (default 64MiB)')
    .action(async (flags: AgentFlags) => {
      const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
      const agent = agentFromFlags(flags, log);
      await agent.start();
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
        // Under `driftless launcher`: a launcher that is gone would boot a second agent when it returns.
        process.once('disconnect', resolve);
      });
      await agent.stop();
    });

  client('apply')
    .description('create or update resources from YAML (multi-document)')
    .requiredOption('-f, --filename <path>', 'a manifest file or a directory of them')
    .addOption(new Option('-o, --output <format>', 'json'))
    .action(async (flags: { filename: string; output?: string; server?: string; token?: string }) => applyCommand(api(flags), flags.filename, parseOutputFormat(flags.output)));

  client('get')
    .description('list devices, sites, deployments or rollouts')
    .argument('<type>', 'devices|sites|deployments|rollouts')
    .argument('[name]')
    .option('-l, --selector <selector>', 'label selector, e.g. tier=store,region!=eu')
    .addOption(new Option('-o, --output <format>', 'json, yaml or wide'))
    .action(async (type: string, name: string | undefined, flags: { selector?: string; output?: string; server?: string; token?: string }) =>
      getCommand(api(flags), type, name, { ...(flags.selector !== undefined ? { selector: flags.selector } : {}), format: parseOutputFormat(flags.output) }),
    );

  client('describe')
    .description('show one device, site, deployment or rollout in detail')
    .argument('<type>', 'device|site|deployment|rollout')
    .argument('<name>')
    .action(async (type: string, name: string, flags: { server?: string; token?: string }) => describeCommand(api(flags), type, name));

  program
    .command('launcher')
    .description("keep the agent's two slots and run the agent from one of them, so it can update itself (A/B)")
    .requiredOption('--data <dir>', 'data directory: slots in DIR/slots; the agent gets --data DIR unless its arguments say otherwise')
    .option('--boot-attempts <n>', 'boots a new agent release gets to report healthy before it is abandoned', '3')
    .option('--trial-seconds <seconds>', 'seconds a new agent release has to report healthy', '300')
    .argument('[agent-args...]', "the agent's arguments, after --")
    .action(async (agentArgs: string[], flags: LauncherFlags) => launcherCommand(flags, agentArgs));

  const artifact = program.command('artifact').description('artifacts: releases of the agent');
  artifact
    .command('push')
    .description('upload a file as an artifact; prints its SHA-256, which an "agent" component names')
    .argument('<file>')
    .requiredOption('--name <name>', 'what the artifact is, e.g. driftless-agent')
    .requiredOption('--version <version>', 'its version; the device reports it once the release runs')
    .option('--server <url>', 'server URL (else DRIFTLESS_SERVER, else the local config file)')
    .option('--token <token>', 'API token (else DRIFTLESS_TOKEN, else the local config file)')
    .addOption(new Option('-o, --output <format>', 'json or yaml'))
    .action(async (file: string, flags: { name: string; version: string; output?: string; server?: string; token?: string }) =>
      artifactPushCommand(api(flags), file, flags, parseOutputFormat(flags.output)),
    );
  artifact
    .command('list')
    .description('uploaded artifacts, newest first')
    .option('--server <url>', 'server URL (else DRIFTLESS_SERVER, else the local config file)')
    .option('--token <token>', 'API token (else DRIFTLESS_TOKEN, else the local config file)')
    .addOption(new Option('-o, --output <format>', 'json or yaml'))
    .action(async (flags: { output?: string; server?: string; token?: string }) => artifactListCommand(api(flags), parseOutputFormat(flags.output)));

  client('drift')
    .description('every device whose actual state differs from desired, and why')
    .addOption(new Option('-o, --output <format>', 'json or yaml'))
    .action(async (flags: { output?: string; server?: string; token?: string }) => driftCommand(api(flags), parseOutputFormat(flags.output)));

  client('logs')
    .description("a device's component output (stdout and stderr), as its agent uploaded it")
    .argument('<device>')
    .argument('[component]', 'only this component')
    .option('-f, --follow', 'keep printing new lines as they arrive', false)
    .option('--tail <n>', 'how many of the newest lines to show first', '100')
    .option('--timestamps', 'prefix each line with when the agent read it', false)
    .addOption(new Option('-o, --output <format>', 'json'))
    .action(async (device: string, component: string | undefined, flags: { follow: boolean; tail: string; timestamps: boolean; output?: string; server?: string; token?: string }) => {
      const tail = Number(flags.tail);
      if (!/^[0-9]+$/.test(flags.tail) || tail < 1 || tail > 1000) throw new DriftlessError('invalid-input', `--tail: "${flags.tail}" must be a whole number from 1 to 1000`);
      await logsCommand(api(flags), device, component, { follow: flags.follow, tail, timestamps: flags.timestamps, format: parseOutputFormat(flags.output) });
    });

  const rollout = program.command('rollout').description('follow and steer rollouts');
  const rolloutClient = (name: string, description: string) =>
    rollout
      .command(name)
      .description(description)
      .argument('<name>', 'a rollout, or a deployment (its latest rollout)')
      .option('--server <url>', 'server URL (else DRIFTLESS_SERVER, else the local config file)')
      .option('--token <token>', 'API token (else DRIFTLESS_TOKEN, else the local config file)');
  rolloutClient('status', 'waves, counts and state of a rollout')
    .addOption(new Option('-o, --output <format>', 'json or yaml'))
    .action(async (name: string, flags: { output?: string; server?: string; token?: string }) => rolloutStatusCommand(api(flags), name, parseOutputFormat(flags.output)));
  for (const action of ['pause', 'resume', 'abort'] as const) {
    const what = { pause: 'stop releasing to more devices', resume: 'continue a paused or halted rollout', abort: 'stop and send every device it reached back' }[action];
    rolloutClient(action, what).action(async (name: string, flags: { server?: string; token?: string }) => rolloutActionCommand(api(flags), action, name));
  }
  rolloutClient('incident', "the rollout's incident as Markdown, for a post-incident review").action(async (name: string, flags: { server?: string; token?: string }) => incidentCommand(api(flags), name));

  client('rollback')
    .description('roll a deployment back to an earlier revision')
    .argument('<kind>', 'deployment')
    .argument('<name>')
    .option('--to-revision <n>', 'the revision to return to (default: the one before the stable one)')
    .action(async (kind: string, name: string, flags: { toRevision?: string; server?: string; token?: string }) => rollbackCommand(api(flags), kind, name, flags.toRevision));

  const token = program.command('token').description('API tokens');
  token
    .command('create')
    .option('--server <url>', 'server URL')
    .option('--token <token>', 'API token')
    .description('create an API token (shown once)')
    .requiredOption('--role <role>', 'viewer, operator or admin')
    .addOption(new Option('-o, --output <format>', 'json'))
    .action(async (flags: { role: string; output?: string; server?: string; token?: string }) => {
      const created = await api(flags).post<{ token: string; role: string; id: string }>('/v1/tokens', { role: flags.role });
      if (parseOutputFormat(flags.output) === 'json') process.stdout.write(`${JSON.stringify(created, null, 2)}\n`);
      else process.stdout.write(`${created.token}\n`);
    });

  program
    .command('demo')
    .description('a server, three local agents and a guided rollout drill')
    .option('--data <dir>', 'data directory (default: a new temporary one)')
    .option('--listen <host:port>', 'address for the demo server', '127.0.0.1:7480')
    .option('--once', 'run the drill and exit instead of waiting for Ctrl-C', false)
    .action(async (flags: { data?: string; listen: string; once: boolean }) => demoCommand(flags));

  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (error instanceof DriftlessError) {
      process.stderr.write(`driftless: ${error.message}\n`);
      return 1;
    }
    process.stderr.write(`driftless: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
