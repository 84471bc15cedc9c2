import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { DriftlessError } from '../protocol/errors.ts';

/** Where the CLI finds its server and token: flags, then environment, then the config file the server wrote. */
export type Connection = { server: string; token: string; /** A CA certificate file to trust for an https:// server (its own self-signed certificate, say). */ ca?: string };

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DRIFTLESS_CONFIG) return env.DRIFTLESS_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'driftless', 'config.json');
}

export function resolveConnection(flags: { server?: string; token?: string; ca?: string }, env: NodeJS.ProcessEnv = process.env): Connection {
  let file: Partial<Connection> = {};
  try {
    file = JSON.parse(readFileSync(configPath(env), 'utf8')) as Partial<Connection>;
  } catch {
    // no config file: flags or environment must say it
  }
  const server = flags.server ?? env.DRIFTLESS_SERVER ?? file.server;
  const token = flags.token ?? env.DRIFTLESS_TOKEN ?? file.token;
  if (!server) throw new DriftlessError('invalid-input', 'no server: pass --server URL, set DRIFTLESS_SERVER, or start `driftless server` on this machine once');
  if (!token) throw new DriftlessError('invalid-input', 'no API token: pass --token, set DRIFTLESS_TOKEN, or start `driftless server` on this machine once');
  const ca = flags.ca ?? env.DRIFTLESS_CA ?? file.ca;
  return { server: server.replace(/\/+$/, ''), token, ...(ca ? { ca } : {}) };
}

export function writeConfig(connection: Connection, env: NodeJS.ProcessEnv = process.env): string {
  const path = configPath(env);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${JSON.stringify(connection, null, 2)}\n`, { mode: 0o600 });
  return path;
}
