import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson, sha256Hex } from './canonical.ts';

/** An Ed25519 key pair as stored on disk: PKCS#8 and SPKI, both DER in base64. */
export type KeyPairText = { privateKey: string; publicKey: string };

export function generateKeyPair(): KeyPairText {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKey: privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
    publicKey: publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
  };
}

export function loadPrivateKey(pkcs8Base64: string): KeyObject {
  return createPrivateKey({ key: Buffer.from(pkcs8Base64, 'base64'), format: 'der', type: 'pkcs8' });
}

export function loadPublicKey(spkiBase64: string): KeyObject {
  const key = createPublicKey({ key: Buffer.from(spkiBase64, 'base64'), format: 'der', type: 'spki' });
  if (key.asymmetricKeyType !== 'ed25519') throw new TypeError('public key is not Ed25519');
  return key;
}

/** A short, stable name for a public key, carried beside signatures so keys can rotate. */
export function keyId(spkiBase64: string): string {
  return sha256Hex(Buffer.from(spkiBase64, 'base64')).slice(0, 16);
}

export function signText(privateKey: KeyObject, text: string): string {
  return sign(null, Buffer.from(text), privateKey).toString('base64');
}

export function verifyText(publicKey: KeyObject, text: string, signatureBase64: string): boolean {
  try {
    return verify(null, Buffer.from(text), publicKey, Buffer.from(signatureBase64, 'base64'));
  } catch {
    return false;
  }
}

/** Signs a value's canonical JSON, so the signature survives re-serialisation. */
export function signValue(privateKey: KeyObject, value: unknown): string {
  return signText(privateKey, canonicalJson(value));
}

export function verifyValue(publicKey: KeyObject, value: unknown, signatureBase64: string): boolean {
  return verifyText(publicKey, canonicalJson(value), signatureBase64);
}

/** The text a device signs to prove it holds its key when it asks for a session. */
export function sessionChallenge(device: string, timestamp: string): string {
  return `driftless-session\n${device}\n${timestamp}`;
}
