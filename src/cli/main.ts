import { Command, CommanderError, Option } from 'commander';
import { DriftlessError } from '../protocol/errors.ts';
import { agentFromFlags, type AgentFlags } from './agent-command.ts';
import { artifactListCommand, artifactPushCommand } from './artifact-command.ts';
import { auditExportCommand, auditListCommand, auditVerifyCommand, type AuditFilters } from './audit-command.ts';
import { launcherCommand, type LauncherFlags } from './launcher-command.ts';
import { createApi } from './api-client.ts';
import { resolveConnection } from './config.ts';
import { demoCommand } from './demo-command.ts';
import { logsCommand } from './logs-command.ts';
import { parseOutputFormat } from './output.ts';
import { applyCommand, describeCommand, driftCommand, getCommand } from './resources.ts';
import { incidentCommand, rollbackCommand, rolloutActionCommand, rolloutStatusCommand } from './rollout-command.ts';
import { releaseKeygenCommand, releaseSignCommand } from './release-command.ts';
import { rotateKeyCommand, serverCommand, type ServerFlags } from './server-command.ts';
import { CommandExit, execCommand, parseExecTimeout, terminalCommand } from './terminal-command.ts';
import { deviceDecisionCommand, tenantCreateCommand, tenantListCommand, tokenCreateCommand, tokenListCommand, tokenRevokeCommand, type TokenCreateFlags } from './token-command.ts';

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
      .option('--token <token>', 'API token (else DRIFTLESS_TOKEN, else the local config file)')
      .option('--ca <file>', "a CA certificate to trust for an https:// server (else DRIFTLESS_CA, else the local config file)");
  const api = (flags: { server?: string; token?: string; ca?: string }) => createApi(resolveConnection(flags));

  const serverProgram = program
    .command('server')
    .description('run the management plane')
    .option('--data <dir>', 'data directory', '.driftless-server')
    .option('--listen <host:port>', 'address to listen on', '0.0.0.0:7480')
    .option('--database <url>', 'postgres://USER:PASSWORD@HOST:PORT/DB for a large fleet or several replicas, or sqlite:PATH (else DRIFTLESS_DATABASE_URL; default: embedded SQLite in the data directory)')
    .option('--admin-token <token>', 'the first admin token (default: generated and printed once)')
    .option('--enroll-token <token>', 'the fleet bootstrap enrollment token (default: generated and printed once)')
    .option('--poll-interval <seconds>', 'how often agents poll for desired state', '30')
    .option('--advertise-url <url>', 'with several replicas: how the others reach this one, to pass on terminals and execs for devices connected here (default: its listen address)')
    .option('--resync-interval <seconds>', 'with several replicas on PostgreSQL: how often each re-reads what the others changed, in case it missed their word', '60')
    .option('--tls', 'serve HTTPS with a self-signed certificate made on first start (kept in the data directory)')
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM; with --tls-key)')
    .option('--tls-key <file>', 'the private key of --tls-cert (PEM)')
    .option('--release-key <file>', 'a release public key (from `driftless release keygen`); devices then install only releases it signed (repeatable)', (value: string, all: string[]) => [...all, value], [] as string[])
    .option('--desired-state-ttl <duration>', 'how long a signed desired state is valid (freeze protection); renewed at half-life', '24h')
    .action(async (flags: ServerFlags) => {
      const server = await serverCommand(flags);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await server.close();
    });
  serverProgram
    .command('rotate-key')
    .description("replace the server's signing key (server stopped; --data as for the server): devices follow it without re-enrolling")
    .action(async (_flags: unknown, command: Command) => {
      const { data, database } = command.optsWithGlobals<{ data: string; database?: string }>();
      await rotateKeyCommand(data, database);
    });

  program
    .command('agent')
    .description('run the device agent')
    .requiredOption('--server <url>', 'management server URL')
    .requiredOption('--enroll-token <token>', 'enrollment token (used only to join)')
    .option('--ca <file>', "a CA certificate to trust for an https:// server (its self-signed certificate, say; else DRIFTLESS_CA)")
    .option('--data <dir>', 'data directory (default: ./.driftless-agent)')
    .option('--name <name>', 'device name (default: host name)')
    .option('--site <site>', 'site the device belongs to')
    .option('--label <key=value>', 'device label (repeatable)', (value: string, all: string[]) => [...all, value], [] as string[])
    .option('--poll-interval <seconds>', 'seconds between desired-state polls (default: the server advises)')
    .option('--reconcile-interval <seconds>', 'seconds between local drift checks', '5')
    .option('--outbox-quota <size>', 'disk the telemetry outbox may use before dropping its oldest records (default 64MiB)')
    .option('--no-remote-shell', 'refuse remote terminals and exec on this device (so does a file named no-remote-shell in the data directory)')
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

  const release = program.command('release').description('release keys: sign what devices may run, offline or in CI');
  release
    .command('keygen')
    .description('make a release key pair: the private key stays offline, the public one goes to the server')
    .requiredOption('--out <dir>', 'directory for release.key and release.pub (never overwritten)')
    .action((flags: { out: string }) => void releaseKeygenCommand(flags));
  release
    .command('sign')
    .description("sign every Deployment in a manifest: writes spec.template.release, which devices check before they install")
    .requiredOption('-f, --filename <file>', 'the manifest (rewritten in place unless --out)')
    .requiredOption('--key <file>', 'the release private key (release.key)')
    .option('--expires <when>', 'after this no device installs the release anew: a duration (90d) or an ISO 8601 time')
    .option('--out <file>', "where to write the signed manifest ('-' for standard output)")
    .action((flags: { filename: string; key: string; expires?: string; out?: string }) => releaseSignCommand(flags));

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

  const audit = client('audit')
    .description('the audit trail: who did what, to what, when, from where, and how it ended')
    .option('--since <when>', 'entries from then on: a duration back from now (24h, 7d) or an ISO 8601 time')
    .option('--until <when>', 'entries before then: a duration back from now or an ISO 8601 time')
    .option('--actor <actor>', 'only this actor (token:ID, device:NAME, enroll-token:ID, anonymous)')
    .option('--action <action>', 'only this action (apply, rollout.pause, …); a trailing * matches a prefix (rollout.*)')
    .option('--outcome <outcome>', 'ok, failed, denied, a status (403) or an error code (conflict)')
    .option('--export <file>', 'write the whole chain to FILE as JSON lines, verifiable offline with `audit verify --file`')
    .addOption(new Option('-o, --output <format>', 'json or yaml'))
    .action(async (flags: AuditFilters & { export?: string; output?: string; server?: string; token?: string }) => {
      const filters: AuditFilters = {};
      for (const key of ['since', 'until', 'actor', 'action', 'outcome'] as const) if (flags[key] !== undefined) filters[key] = flags[key];
      if (flags.export !== undefined) await auditExportCommand(api(flags), flags.export, filters);
      else await auditListCommand(api(flags), filters, parseOutputFormat(flags.output));
    });
  audit
    .command('verify')
    .description("check the audit hash chain (the server's, or an exported file's without the server); fails naming the first broken entry")
    .option('--file <file>', 'an export written by `audit --export`')
    .action(async (flags: { file?: string }, command: Command) => {
      // --server, --token and -o belong to `audit`, and may be written before or after `verify`.
      const global = command.optsWithGlobals<{ server?: string; token?: string; output?: string }>();
      await auditVerifyCommand(() => api(global), flags.file, parseOutputFormat(global.output));
    });

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

  client('exec')
    .description("run a command on a device's host, or in one of its components' containers, and exit with its status")
    .argument('<device>')
    .argument('[command...]', 'the command and its arguments, after --')
    .option('--component <name>', "run inside this component's container instead of on the host")
    .option('--timeout <seconds>', 'kill the command after this long (default 60)')
    .action(async (device: string, command: string[], flags: { component?: string; timeout?: string; server?: string; token?: string }) => {
      const timeoutSeconds = parseExecTimeout(flags.timeout);
      const status = await execCommand(api(flags), device, command, { ...(flags.component ? { component: flags.component } : {}), ...(timeoutSeconds ? { timeoutSeconds } : {}) });
      if (status !== 0) throw new CommandExit(status);
    });

  client('terminal')
    .description('an interactive shell on a device, through its agent (recorded); exits with the shell\'s status')
    .argument('<device>')
    .action(async (device: string, flags: { server?: string; token?: string }) => {
      const status = await terminalCommand(resolveConnection(flags), device);
      if (status !== 0) throw new CommandExit(status);
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

  const token = program.command('token').description("this tenant's API tokens and enrollment tokens (admin)");
  const tokenClient = (name: string) =>
    token
      .command(name)
      .option('--server <url>', 'server URL (else DRIFTLESS_SERVER, else the local config file)')
      .option('--token <token>', 'API token (else DRIFTLESS_TOKEN, else the local config file)');
  tokenClient('create')
    .description('create an API token (--role) or an enrollment token (--enroll); its secret is shown once, the server keeps only a hash')
    .option('--role <role>', 'viewer, operator or admin')
    .option('--expires <duration>', 'refused after this long: 90s, 15m, 12h, 30d, 8w (default: never)')
    .option('--description <text>', 'what the token is for')
    .option('--enroll', 'an enrollment token: devices join this tenant with it')
    .option('--site <site>', 'with --enroll: devices that join land on this site')
    .option('--uses <n>', 'with --enroll: how many devices may join with it (default: no limit)')
    .option('--auto-accept', 'with --enroll: accept devices at once (default: they wait, pending, for `driftless device accept`)')
    .addOption(new Option('-o, --output <format>', 'json or yaml'))
    .action(async (flags: TokenCreateFlags & { output?: string; server?: string; token?: string }) => tokenCreateCommand(api(flags), flags, parseOutputFormat(flags.output)));
  tokenClient('list')
    .description("this tenant's tokens and their state (active, expired, revoked), never their secrets")
    .option('--enroll', 'enrollment tokens instead of API tokens')
    .addOption(new Option('-o, --output <format>', 'json or yaml'))
    .action(async (flags: { enroll?: boolean; output?: string; server?: string; token?: string }) => tokenListCommand(api(flags), flags, parseOutputFormat(flags.output)));
  tokenClient('revoke')
    .description('revoke a token by its ID: refused from now on')
    .argument('<id>')
    .option('--enroll', 'an enrollment token')
    .action(async (id: string, flags: { enroll?: boolean; server?: string; token?: string }) => tokenRevokeCommand(api(flags), id, flags));

  const tenant = program.command('tenant').description('tenants: organizations with separate fleets (the server operator: an admin of the default tenant)');
  tenant
    .command('create')
    .description("create a tenant; prints its first admin token (shown once)")
    .argument('<name>')
    .option('--server <url>', 'server URL (else DRIFTLESS_SERVER, else the local config file)')
    .option('--token <token>', 'API token (else DRIFTLESS_TOKEN, else the local config file)')
    .addOption(new Option('-o, --output <format>', 'json or yaml'))
    .action(async (name: string, flags: { output?: string; server?: string; token?: string }) => tenantCreateCommand(api(flags), name, parseOutputFormat(flags.output)));
  tenant
    .command('list')
    .description('tenants: all for the server operator, its own for any other admin')
    .option('--server <url>', 'server URL (else DRIFTLESS_SERVER, else the local config file)')
    .option('--token <token>', 'API token (else DRIFTLESS_TOKEN, else the local config file)')
    .addOption(new Option('-o, --output <format>', 'json or yaml'))
    .action(async (flags: { output?: string; server?: string; token?: string }) => tenantListCommand(api(flags), parseOutputFormat(flags.output)));

  const device = program.command('device').description('accept or revoke devices (operator)');
  for (const decision of ['accept', 'revoke'] as const) {
    device
      .command(decision)
      .description(decision === 'accept' ? 'accept a pending device: it gets its desired state' : 'revoke a device: refused at once on every channel, its open channel closed')
      .argument('<name>')
      .option('--server <url>', 'server URL (else DRIFTLESS_SERVER, else the local config file)')
      .option('--token <token>', 'API token (else DRIFTLESS_TOKEN, else the local config file)')
      .action(async (name: string, flags: { server?: string; token?: string }) => deviceDecisionCommand(api(flags), decision, name));
  }

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
    if (error instanceof CommandExit) return error.status;
    if (error instanceof DriftlessError) {
      process.stderr.write(`driftless: ${error.message}\n`);
      return 1;
    }
    process.stderr.write(`driftless: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
