import { DriftlessError } from '../protocol/errors.ts';
import { startServer, type RunningServer } from '../server/server.ts';
import { writeConfig } from './config.ts';

export type ServerFlags = { data: string; listen: string; adminToken?: string; enrollToken?: string; pollInterval?: string; database?: string };

export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(listen);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new DriftlessError('invalid-input', `--listen: "${listen}" is not HOST:PORT`);
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}

export function parsePositiveSeconds(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 86_400) throw new DriftlessError('invalid-input', `${flag}: "${value}" is not a number of seconds between 0 and 86400`);
  return n;
}

/** `driftless server`: serve until interrupted; print the credentials made on first start, once. */
export async function serverCommand(flags: ServerFlags): Promise<RunningServer> {
  if (flags.database && !flags.database.startsWith('sqlite:')) {
    throw new DriftlessError('invalid-input', `--database: "${flags.database.split(':')[0]}:" databases are not supported yet; the embedded SQLite store is used by default`);
  }
  const { host, port } = parseListen(flags.listen);
  const server = await startServer({
    dataDir: flags.data,
    host,
    port,
    pollSeconds: parsePositiveSeconds('--poll-interval', flags.pollInterval, 30),
    ...(flags.adminToken ? { adminToken: flags.adminToken } : {}),
    ...(flags.enrollToken ? { enrollToken: flags.enrollToken } : {}),
  });
  const say = (line: string) => process.stderr.write(`${line}\n`);
  say(`driftless server listening on ${server.url} (data in ${flags.data})`);
  if (server.created.adminToken) {
    const path = writeConfig({ server: server.url, token: server.created.adminToken });
    say(`admin token:      ${server.created.adminToken}   (saved for the CLI in ${path})`);
  }
  if (server.created.enrollToken) say(`enrollment token: ${server.created.enrollToken}`);
  if (server.created.enrollToken || server.created.adminToken) say('These are shown once. Enrol a device with: driftless agent --server URL --enroll-token TOKEN');
  return server;
}
