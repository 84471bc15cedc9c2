import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { createSelfSignedCertificate, ensureSelfSignedCertificate } from './self-signed.ts';

const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('self-signed certificate', () => {
  test('names its hosts, signs itself, and is read by Node and by OpenSSL', () => {
    const made = createSelfSignedCertificate({ commonName: 'driftless test', hosts: ['localhost', 'fleet.example', '127.0.0.1', '::1', 'fd00::a:1'], now: new Date('2025-06-01T12:00:00Z') });
    const x509 = new X509Certificate(made.cert);
    assert.equal(x509.subject, 'CN=driftless test');
    assert.ok(x509.verify(x509.publicKey), 'self-signed');
    assert.equal(x509.checkHost('fleet.example'), 'fleet.example');
    assert.equal(x509.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(x509.checkIP('fd00::a:1'), 'fd00::a:1');
    assert.equal(x509.checkHost('other.example'), undefined);
    assert.equal(x509.validFrom, 'Jun  1 11:00:00 2025 GMT');
    assert.equal(x509.validTo, 'May 30 12:00:00 2035 GMT');
    assert.equal(made.fingerprint256, x509.fingerprint256);
    if (!hasOpenssl) return;
    const dir = mkdtempSync(join(tmpdir(), 'driftless-cert-'));
    try {
      writeFileSync(join(dir, 'c.pem'), made.cert);
      assert.match(execFileSync('openssl', ['verify', '-CAfile', join(dir, 'c.pem'), join(dir, 'c.pem')]).toString(), /OK/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a validity past 2049 is written as GeneralizedTime', () => {
    const x509 = new X509Certificate(createSelfSignedCertificate({ commonName: 'late', hosts: ['localhost'], now: new Date('2045-01-01T00:00:00Z'), days: 3650 }).cert);
    assert.equal(x509.validTo, 'Dec 30 00:00:00 2054 GMT');
  });

  test('any serial number, leading zero bytes or high bit included, is written in DER\'s one form and read back', () => {
    // Serials from random bytes once began with a zero byte about one time in 256: Node refused them (illegal padding).
    const read = (serial: Buffer) => new X509Certificate(createSelfSignedCertificate({ commonName: 's', hosts: ['localhost'], serial }).cert).serialNumber;
    const expected = (serial: Buffer) => BigInt(`0x${serial.toString('hex')}`).toString(16).toUpperCase();
    for (const bytes of [[0x00, 0x01], [0x00, 0x80], [0x80], [0x00, 0x00, 0x7f], [0xff, 0xff], [0x01]]) {
      const serial = Buffer.from(bytes);
      assert.equal(BigInt(`0x${read(serial)}`), BigInt(`0x${serial.toString('hex')}`), serial.toString('hex'));
    }
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 20 }).filter((a) => a.some((b) => b !== 0)), (bytes) => {
        const serial = Buffer.from(bytes);
        assert.equal(BigInt(`0x${read(serial)}`).toString(16).toUpperCase(), expected(serial));
      }),
      { numRuns: 200 },
    );
    assert.throws(() => read(Buffer.alloc(3)), /serial/);
  });

  test('made once in the data directory, the key readable by its owner only, and kept', () => {
    const dir = mkdtempSync(join(tmpdir(), 'driftless-cert-'));
    try {
      const first = ensureSelfSignedCertificate(dir, ['localhost']);
      assert.equal(first.created, true);
      assert.equal(statSync(join(dir, 'tls', 'server.key')).mode & 0o077, 0);
      const second = ensureSelfSignedCertificate(dir, ['localhost']);
      assert.equal(second.created, false);
      assert.equal(second.fingerprint256, first.fingerprint256);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
