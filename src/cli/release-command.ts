import { createPublicKey } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isMap, parseAllDocuments } from 'yaml';
import { parseDuration } from '../protocol/duration.ts';
import { DriftlessError } from '../protocol/errors.ts';
import { parseManifest } from '../protocol/manifest.ts';
import { signRelease } from '../protocol/release.ts';
import type { Template } from '../protocol/resources.ts';
import { generateKeyPair, keyId, loadPrivateKey, loadPublicKey } from '../protocol/signing.ts';

/**
 * `driftless release`: the operator's release key, kept away from the server. `keygen` makes the
 * pair; `sign` writes the key's signature into each Deployment's `spec.template.release`, offline
 * or in CI, and `driftless apply` then carries it to the server and on to the devices.
 */

export const PRIVATE_FILE = 'release.key';
export const PUBLIC_FILE = 'release.pub';

export function releaseKeygenCommand(flags: { out: string }, say: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): { keyId: string; privatePath: string; publicPath: string } {
  const privatePath = join(flags.out, PRIVATE_FILE);
  const publicPath = join(flags.out, PUBLIC_FILE);
  for (const path of [privatePath, publicPath]) {
    if (existsSync(path)) throw new DriftlessError('conflict', `--out: ${path} exists; a release key is never overwritten (devices may have pinned it)`);
  }
  mkdirSync(flags.out, { recursive: true, mode: 0o700 });
  const pair = generateKeyPair();
  writeFileSync(privatePath, `${pair.privateKey}\n`, { mode: 0o600, flag: 'wx' });
  writeFileSync(publicPath, `${pair.publicKey}\n`, { mode: 0o644, flag: 'wx' });
  const id = keyId(pair.publicKey);
  say(`release key ${id}`);
  say(`  private: ${privatePath}   (keep it offline; whoever holds it can release software to the fleet)`);
  say(`  public:  ${publicPath}   (give it to the server: driftless server --release-key ${publicPath})`);
  return { keyId: id, privatePath, publicPath };
}

/** Reads a public key file as `release keygen` writes it (SPKI, base64); the error names the flag. */
export function readReleasePublicKey(flag: string, path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (error) {
    throw new DriftlessError('invalid-input', `${flag}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    loadPublicKey(text);
  } catch {
    throw new DriftlessError('invalid-input', `${flag}: ${path} is not an Ed25519 public key (SPKI, base64) as \`driftless release keygen\` writes it`);
  }
  return text;
}

/** The expiry of a release: a duration from now (`90d`) or a time (ISO 8601). */
export function releaseExpiry(text: string | undefined, nowMs: number): string | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms !== null) return new Date(nowMs + ms).toISOString();
  const at = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(text) || Number.isNaN(at)) throw new DriftlessError('invalid-input', `--expires: "${text}" is neither a duration (90d, 12h) nor an ISO 8601 time`);
  if (at <= nowMs) throw new DriftlessError('invalid-input', `--expires: ${text} is in the past`);
  return new Date(at).toISOString();
}

/**
 * Signs every Deployment in a manifest file; returns the signed text (comments and layout kept).
 * The statement covers the Deployment's name and its template's components (protocol/release.ts),
 * not its selector or strategy: where and how fast it rolls out stay the server's business.
 */
export function signManifest(text: string, file: string, privateKeyText: string, expires: string | undefined): { text: string; signed: { name: string; version: string }[] } {
  parseManifest(text, file); // every problem named with its line before anything is signed
  let privateKey;
  try {
    privateKey = loadPrivateKey(privateKeyText.trim());
  } catch {
    throw new DriftlessError('invalid-input', '--key: not an Ed25519 private key (PKCS#8, base64) as `driftless release keygen` writes it');
  }
  const publicKey = createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).toString('base64');
  const documents = parseAllDocuments(text, { uniqueKeys: true, logLevel: 'error' });
  const docs = Array.isArray(documents) ? documents : [];
  const signed: { name: string; version: string }[] = [];
  for (const doc of docs) {
    if (!isMap(doc.contents)) continue;
    const value = doc.toJS() as { kind?: string; metadata?: { name?: string }; spec?: { template?: Template } };
    if (value.kind !== 'Deployment' || !value.spec?.template || !value.metadata?.name) continue;
    const { release: _previous, ...template } = value.spec.template;
    const release = signRelease(privateKey, publicKey, value.metadata.name, template, expires);
    doc.setIn(['spec', 'template', 'release'], doc.createNode(release));
    signed.push({ name: value.metadata.name, version: template.version });
  }
  if (signed.length === 0) throw new DriftlessError('invalid-input', `${file}: no Deployment to sign`);
  return { text: docs.map((d, i) => (i > 0 && !String(d).startsWith('---') ? `---\n${String(d)}` : String(d))).join(''), signed };
}

export function releaseSignCommand(flags: { filename: string; key: string; expires?: string; out?: string }, nowMs = Date.now(), say: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): void {
  const read = (flag: string, path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      throw new DriftlessError('invalid-input', `${flag}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  };
  const text = read('-f', flags.filename);
  const result = signManifest(text, flags.filename, read('--key', flags.key), releaseExpiry(flags.expires, nowMs));
  if (flags.out === '-') process.stdout.write(result.text);
  else writeFileSync(flags.out ?? flags.filename, result.text);
  for (const s of result.signed) say(`signed Deployment ${s.name} (version ${s.version})${flags.out === '-' ? '' : ` in ${flags.out ?? flags.filename}`}`);
}
