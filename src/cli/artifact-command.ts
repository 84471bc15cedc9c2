import { readFileSync, statSync } from 'node:fs';
import { DriftlessError } from '../protocol/errors.ts';
import type { Api } from './api-client.ts';
import { printData, type OutputFormat } from './output.ts';

type ArtifactAnswer = { sha256: string; name: string; version: string; size: number; signature: string; createdAt?: string };

/** `driftless artifact push FILE --name N --version V`: uploads the bytes as they are; prints their digest. */
export async function artifactPushCommand(api: Api, file: string, flags: { name: string; version: string }, format: OutputFormat): Promise<void> {
  let bytes: Buffer;
  try {
    if (!statSync(file).isFile()) throw new Error('not a file');
    bytes = readFileSync(file);
  } catch {
    throw new DriftlessError('invalid-input', `${file}: no such file`);
  }
  const query = new URLSearchParams({ name: flags.name, version: flags.version });
  const answer = await api.upload<ArtifactAnswer>(`/v1/artifacts?${query}`, bytes);
  if (format === 'json' || format === 'yaml') return printData(answer, format, () => []);
  process.stdout.write(`${answer.sha256}\n`);
}

/** `driftless artifact list`: uploaded artifacts, newest first. */
export async function artifactListCommand(api: Api, format: OutputFormat): Promise<void> {
  const artifacts = await api.get<ArtifactAnswer[]>('/v1/artifacts');
  printData(artifacts, format, () => [['NAME', 'VERSION', 'SIZE', 'SHA256'], ...artifacts.map((a) => [a.name, a.version, String(a.size), a.sha256])]);
}
