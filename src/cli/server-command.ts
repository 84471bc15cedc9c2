import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { DriftlessError } from '../protocol/errors.ts';
import { parseDatabaseUrl, redactPassword, rotateServerKey, startServer, type RunningServer } from '../server/server.ts';
import { writeConfig } from './config.ts';
import { parseDuration } from '../protocol/duration.ts';
import { readReleasePublicKey } from './release-command.ts';

export type ServerFlags = { tls?: boolean; tlsCert?: string; tlsKey?: string; data: string; listen: string; adminToken?: string; enrollToken?: string; pollInterval?: string; database?: string; resyncInterval?: string; advertiseUrl?: string; releaseKey?: string[]; desiredStateTtl?: string };

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

function parseTtl(text: string): number {
  const ms = parseDuration(text);
  if (ms === null || ms < 10_000) throw new DriftlessError('invalid-input', `--desired-state-ttl: "${text}" is not a duration of at least 10s (e.g. 24h, 7d)`);
  return ms;
}

/** --tls (a self-signed certificate made once), or --tls-cert and --tls-key (PEM files), or plain HTTP. */
export function tlsOption(flags: Pick<ServerFlags, 'tls' | 'tlsCert' | 'tlsKey'>): { tls?: { cert: string; key: string } | 'self-signed' } {
  if (flags.tlsCert === undefined && flags.tlsKey === undefined) return flags.tls ? { tls: 'self-signed' } : {};
  if (flags.tlsCert === undefined || flags.tlsKey === undefined) throw new DriftlessError('invalid-input', '--tls-cert and --tls-key go together: give both');
  const read = (flag: string, path: string, marker: RegExp) => {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      throw new DriftlessError('invalid-input', `${flag}: cannot read "${path}": ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    if (!marker.test(text)) throw new DriftlessError('invalid-input', `${flag}: "${path}" is not a PEM file of the right kind`);
    return text;
  };
  const cert = read('--tls-cert', flags.tlsCert, /-----BEGIN CERTIFICATE-----/);
  const key = read('--tls-key', flags.tlsKey, /-----BEGIN [A-Z ]*PRIVATE KEY-----/);
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    throw new DriftlessError('invalid-input', `--tls-cert/--tls-key: ${(error as Error).message}`);
  }
  return { tls: { cert, key } };
}

function parseAdvertiseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new DriftlessError('invalid-input', `--advertise-url: "${value}" is not a URL (http://HOST:PORT)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new DriftlessError('invalid-input', `--advertise-url: "${value}" is not an http:// or https:// URL`);
  return url.origin;
}

/** `--database URL` (else DRIFTLESS_DATABASE_URL), checked before anything starts. */
function databaseFlag(flag: string | undefined): string | undefined {
  const url = flag ?? (process.env.DRIFTLESS_DATABASE_URL || undefined);
  try {
    parseDatabaseUrl(url, '');
  } catch (error) {
    throw new DriftlessError('invalid-input', (error as Error).message);
  }
  return url;
}

/** `driftless server`: serve until interrupted; print the credentials made on first start, once. */
export async function serverCommand(flags: ServerFlags): Promise<RunningServer> {
  const database = databaseFlag(flags.database);
  const { host, port } = parseListen(flags.listen);
  const server = await startServer({
    dataDir: flags.data,
    ...(database ? { database } : {}),
    host,
    port,
    pollSeconds: parsePositiveSeconds('--poll-interval', flags.pollInterval, 30),
    resyncSeconds: parsePositiveSeconds('--resync-interval', flags.resyncInterval, 60),
    ...(flags.advertiseUrl === undefined ? {} : { advertiseUrl: parseAdvertiseUrl(flags.advertiseUrl) }),
    ...tlsOption(flags),
    ...(flags.releaseKey && flags.releaseKey.length > 0 ? { releaseKeys: flags.releaseKey.map((path) => readReleasePublicKey('--release-key', path)) } : {}),
    ...(flags.desiredStateTtl === undefined ? {} : { desiredValidityMs: parseTtl(flags.desiredStateTtl) }),
    ...(flags.adminToken ? { adminToken: flags.adminToken } : {}),
    ...(flags.enrollToken ? { enrollToken: flags.enrollToken } : {}),
  });
  const say = (line: string) => process.stderr.write(`${line}\n`);
  say(`driftless server listening on ${server.url} (data in ${flags.data}${database ? `, store ${redactPassword(database)}` : ''})`);
  say(`dashboard: ${server.url}/ (sign in with an API token)`);
  if (server.tls?.created) {
    say(`made a self-signed TLS certificate: ${server.tls.certFile}`);
    say(`  SHA-256 fingerprint ${server.tls.fingerprint256}`);
    say(`  agents and the CLI trust it with --ca ${server.tls.certFile} (or DRIFTLESS_CA)`);
  }
  if (server.created.adminToken) {
    const path = writeConfig({ server: server.url, token: server.created.adminToken, ...(server.tls?.certFile ? { ca: server.tls.certFile } : {}) });
    say(`admin token:      ${server.created.adminToken}   (saved for the CLI in ${path})`);
  }
  if (server.created.enrollToken) say(`enrollment token: ${server.created.enrollToken}`);
  if (server.created.enrollToken || server.created.adminToken) say('These are shown once. Enrol a device with: driftless agent --server URL --enroll-token TOKEN');
  return server;
}

/**
 * `driftless server rotate-key`: run against the data directory while the server is stopped. The
 * new key is signed by the old one, so enrolled devices follow it without re-enrolling; the server
 * signs every desired state anew when it next starts.
 */
export async function rotateKeyCommand(dataDir: string, databaseUrl?: string): Promise<void> {
  const database = databaseFlag(databaseUrl);
  const rotated = await rotateServerKey(dataDir, new Date().toISOString(), database);
  if (!rotated) throw new DriftlessError('invalid-input', `--data: no server data in ${dataDir} (no driftless.db)`);
  process.stdout.write(`signing key ${rotated.previousKeyId} rotated to ${rotated.keyId}; start the server: devices follow the rotation on their next poll\n`);
}
