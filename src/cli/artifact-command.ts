import { readFileSync, statSync } from 'node:fs';
import { DriftlessError, isErrorCode, networkFailure } from '../protocol/errors.ts';
import type { Connection } from './config.ts';
import { printData, type OutputFormat } from './output.ts';

type ArtifactAnswer = { sha256: string; name: string; version: string; size: number; signature: string; createdAt?: string };

/** `driftless artifact push FILE --name N --version V`: uploads the bytes as they are; prints their digest. */
export async function artifactPushCommand(connection: Connection, file: string, flags: { name: string; version: string }, format: OutputFormat): Promise<void> {
  let bytes: Buffer;
  try {
    if (!statSync(file).isFile()) throw new Error('not a file');
    bytes = readFileSync(file);
  } catch {
    throw new DriftlessError('invalid-input', `${file}: no such file`);
  }
  const query = new URLSearchParams({ name: flags.name, version: flags.version });
  const answer = await call<ArtifactAnswer>(connection, `/v1/artifacts?${query}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: bytes });
  if (format === 'json' || format === 'yaml') return printData(answer, format, () => []);
  process.stdout.write(`${answer.sha256}\n`);
}

/** `driftless artifact list`: uploaded artifacts, newest first. */
export async function artifactListCommand(connection: Connection, format: OutputFormat): Promise<void> {
  const artifacts = await call<ArtifactAnswer[]>(connection, '/v1/artifacts', { method: 'GET' });
  printData(artifacts, format, () => [['NAME', 'VERSION', 'SIZE', 'SHA256'], ...artifacts.map((a) => [a.name, a.version, String(a.size), a.sha256])]);
}

/** Raw bytes do not fit the JSON API client; the same errors come out of this one. */
async function call<T>(connection: Connection, path: string, init: { method: string; headers?: Record<string, string>; body?: Buffer }): Promise<T> {
  let response: Response;
  try {
    response = await fetch(`${connection.server}${path}`, { ...init, headers: { ...init.headers, authorization: `Bearer ${connection.token}` }, signal: AbortSignal.timeout(10 * 60_000) });
  } catch (error) {
    throw new DriftlessError('unavailable', `cannot reach the server at ${connection.server}: ${networkFailure(error)}`);
  }
  const text = await response.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // reported below by status
  }
  if (!response.ok) {
    const error = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    throw new DriftlessError(isErrorCode(error?.code) ? error.code : 'internal', typeof error?.message === 'string' ? error.message : `server answered ${response.status}`);
  }
  return parsed as T;
}
