import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import { generateKeyPair, keyId, loadPrivateKey, loadPublicKey, sessionChallenge, signText, signValue, verifyText, verifyValue } from './signing.ts';

const pair = generateKeyPair();
const privateKey = loadPrivateKey(pair.privateKey);
const publicKey = loadPublicKey(pair.publicKey);
const other = generateKeyPair();

describe('signing', () => {
  test('a key pair survives its text form: what one half signs, the other verifies', () => {
    const signature = signText(privateKey, 'hello');
    assert.equal(verifyText(publicKey, 'hello', signature), true);
    assert.equal(Buffer.from(signature, 'base64').length, 64, 'an Ed25519 signature is 64 bytes');
  });

  test('a changed text, another key, or a damaged signature does not verify', () => {
    const signature = signText(privateKey, 'hello');
    assert.equal(verifyText(publicKey, 'hellp', signature), false);
    assert.equal(verifyText(loadPublicKey(other.publicKey), 'hello', signature), false);
    const damaged = Buffer.from(signature, 'base64');
    damaged[0] = damaged[0]! ^ 1;
    assert.equal(verifyText(publicKey, 'hello', damaged.toString('base64')), false);
  });

  test('garbage signatures are false, not exceptions', () => {
    for (const garbage of ['', 'AAAA', '!!!', 'x'.repeat(500)]) assert.equal(verifyText(publicKey, 'hello', garbage), false);
  });

  test('signValue signs canonical JSON: key order and re-serialisation do not matter', () => {
    const signature = signValue(privateKey, { b: [1, { d: 1, c: 2 }], a: 'x' });
    assert.equal(verifyValue(publicKey, { a: 'x', b: [1, { c: 2, d: 1 }] }, signature), true);
    assert.equal(verifyValue(publicKey, JSON.parse(JSON.stringify({ a: 'x', b: [1, { c: 2, d: 1 }] })), signature), true);
    assert.equal(verifyValue(publicKey, { a: 'x', b: [{ c: 2, d: 1 }, 1] }, signature), false, 'array order matters');
  });

  test('keyId is a stable 16-hex-digit name per public key', () => {
    assert.match(keyId(pair.publicKey), /^[0-9a-f]{16}$/);
    assert.equal(keyId(pair.publicKey), keyId(pair.publicKey));
    assert.notEqual(keyId(pair.publicKey), keyId(other.publicKey));
  });

  test('loadPublicKey refuses a key that is not Ed25519, and bytes that are not a key', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
    assert.throws(() => loadPublicKey(ec), /not Ed25519/);
    assert.throws(() => loadPublicKey('bm90IGEga2V5'));
  });

  test('the session challenge binds the device name and the timestamp', () => {
    const at = '2025-01-01T00:00:00.000Z';
    const signature = signText(privateKey, sessionChallenge('pos-01', at));
    assert.equal(verifyText(publicKey, sessionChallenge('pos-01', at), signature), true);
    assert.equal(verifyText(publicKey, sessionChallenge('pos-02', at), signature), false);
    assert.equal(verifyText(publicKey, sessionChallenge('pos-01', '2025-01-01T00:00:01.000Z'), signature), false);
  });
});
