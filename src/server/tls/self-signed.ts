import { generateKeyPairSync, randomBytes, sign, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';

/**
 * A self-signed certificate for `driftless server --tls`, made with node:crypto alone (no OpenSSL
 * tool, no dependency): an ECDSA P-256 key and a minimal X.509 v3 certificate, DER-encoded here.
 * Agents and the CLI trust it by pinning the certificate file itself (`--ca FILE`).
 */

// ---- a minimal DER encoder: just what a certificate needs ----

function der(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const length = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : n < 0x10000 ? Buffer.from([0x82, n >> 8, n & 0xff]) : Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, content]);
}
const sequence = (...items: Buffer[]) => der(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => der(0x31, Buffer.concat(items));
/** A non-negative INTEGER from its big-endian bytes, in DER's one shortest form (X.690 8.3.2). */
function integer(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const minimal = bytes.subarray(start);
  return der(0x02, minimal.length === 0 || minimal[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), minimal]) : minimal);
}
const octetString = (content: Buffer) => der(0x04, content);
const bitString = (content: Buffer) => der(0x03, Buffer.concat([Buffer.from([0]), content]));
const utf8 = (text: string) => der(0x0c, Buffer.from(text, 'utf8'));
const explicit = (n: number, content: Buffer) => der(0xa0 + n, content);
const boolean = (value: boolean) => der(0x01, Buffer.from([value ? 0xff : 0]));

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const bytes = [a! * 40 + b!];
  for (const part of rest) {
    const base128 = [part & 0x7f];
    for (let v = part >> 7; v > 0; v >>= 7) base128.unshift((v & 0x7f) | 0x80);
    bytes.push(...base128);
  }
  return der(0x06, Buffer.from(bytes));
}

function time(date: Date): Buffer {
  const iso = date.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  // UTCTime until 2049, GeneralizedTime from 2050 (RFC 5280, 4.1.2.5).
  return date.getUTCFullYear() < 2050 ? der(0x17, Buffer.from(`${iso.slice(2)}Z`)) : der(0x18, Buffer.from(`${iso}Z`));
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  const [head = '', tail = ''] = ip.split('::');
  const groups = (text: string) => (text ? text.split(':') : []);
  const missing = 8 - groups(head).length - groups(tail).length;
  const all = ip.includes('::') ? [...groups(head), ...Array(missing).fill('0'), ...groups(tail)] : groups(ip);
  return Buffer.concat(all.map((g) => Buffer.from([parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff])));
}

export type SelfSigned = { cert: string; key: string; fingerprint256: string };

/** A self-signed certificate for these host names and addresses, valid from an hour ago for `days`. */
export function createSelfSignedCertificate(opts: { commonName: string; hosts: readonly string[]; now?: Date; days?: number; serial?: Buffer }): SelfSigned {
  const now = opts.now ?? new Date();
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const ecdsaWithSha256 = sequence(oid('1.2.840.10045.4.3.2'));
  const name = sequence(set(sequence(oid('2.5.4.3'), utf8(opts.commonName.slice(0, 64)))));
  const altNames = [...new Set(opts.hosts)].map((host) => (isIP(host) ? der(0x87, ipBytes(host)) : der(0x82, Buffer.from(host, 'ascii'))));
  const extensions = explicit(
    3,
    sequence(
      sequence(oid('2.5.29.17'), octetString(sequence(...altNames))),
      // Its own authority: the file agents pin is this certificate.
      sequence(oid('2.5.29.19'), boolean(true), octetString(sequence(boolean(true)))),
      sequence(oid('2.5.29.15'), boolean(true), octetString(bitString(Buffer.from([0x84])))),
      sequence(oid('2.5.29.37'), octetString(sequence(oid('1.3.6.1.5.5.7.3.1')))),
    ),
  );
  // A positive serial number of at most 20 bytes (RFC 5280, 4.1.2.2); leading zero bytes are dropped by integer().
  const serial = opts.serial ?? randomBytes(16);
  if (serial.length === 0 || serial.length > 20 || serial.every((b) => b === 0)) throw new Error('serial: 1 to 20 bytes, not zero');
  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))),
    integer(serial),
    ecdsaWithSha256,
    name,
    sequence(time(new Date(now.getTime() - 3600_000)), time(new Date(now.getTime() + (opts.days ?? 3650) * 86_400_000))),
    name,
    publicKey.export({ format: 'der', type: 'spki' }),
    extensions,
  );
  const signature = sign('sha256', tbs, { key: privateKey, dsaEncoding: 'der' });
  const certificate = sequence(tbs, ecdsaWithSha256, bitString(signature));
  const cert = `-----BEGIN CERTIFICATE-----\n${certificate.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`;
  return { cert, key: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), fingerprint256: new X509Certificate(cert).fingerprint256 };
}

/** The names a server on this machine is reached by: its host name, localhost and every address it has. */
export function localHosts(extra: readonly string[] = []): string[] {
  const addresses = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address.split('%')[0]!));
  return [...new Set(['localhost', hostname().toLowerCase(), '127.0.0.1', '::1', ...addresses, ...extra].filter((h) => h && h !== '0.0.0.0' && h !== '::'))];
}

export type ServerCertificate = { cert: string; key: string; certFile: string; fingerprint256: string; created: boolean };

/** The data directory's certificate (tls/server.crt and .key), made on first start. */
export function ensureSelfSignedCertificate(dataDir: string, hosts: readonly string[]): ServerCertificate {
  const dir = join(dataDir, 'tls');
  const certFile = join(dir, 'server.crt');
  const keyFile = join(dir, 'server.key');
  if (existsSync(certFile) && existsSync(keyFile)) {
    const cert = readFileSync(certFile, 'utf8');
    return { cert, key: readFileSync(keyFile, 'utf8'), certFile, fingerprint256: new X509Certificate(cert).fingerprint256, created: false };
  }
  const made = createSelfSignedCertificate({ commonName: `driftless ${hostname()}`, hosts });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(keyFile, made.key, { mode: 0o600 });
  writeFileSync(certFile, made.cert, { mode: 0o644 });
  return { ...made, certFile, created: true };
}
