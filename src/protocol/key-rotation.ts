import { Type, type Static } from '@sinclair/typebox';
import type { KeyObject } from 'node:crypto';
import { keyId, loadPublicKey, signValue, verifyValue } from './signing.ts';

const Base64 = Type.String({ pattern: '^[A-Za-z0-9+/=]+$', maxLength: 4096 });

/**
 * A server signing-key rotation: the next public key, signed by the previous key. A device that
 * pinned the previous key at enrollment follows the statement to the next one, so the server's key
 * can change without re-enrolling a single device; a statement not signed by a key the device
 * already trusts moves nothing.
 */
export const KeyRotation = Type.Object(
  {
    previousKeyId: Type.String({ pattern: '^[0-9a-f]{16}$' }),
    nextKey: Base64,
    rotatedAt: Type.String({ minLength: 20, maxLength: 40 }),
    signature: Base64,
  },
  { additionalProperties: false },
);
export type KeyRotation = Static<typeof KeyRotation>;

export const ServerKeys = Type.Object({ rotations: Type.Array(KeyRotation, { maxItems: 1000 }) }, { additionalProperties: false });
export type ServerKeys = Static<typeof ServerKeys>;

const statementOf = (r: Omit<KeyRotation, 'signature'>) => ({ kind: 'driftless-key-rotation', previousKeyId: r.previousKeyId, nextKey: r.nextKey, rotatedAt: r.rotatedAt });

export function signRotation(previous: { privateKey: KeyObject; publicKey: string }, nextKey: string, rotatedAt: string): KeyRotation {
  const body = { previousKeyId: keyId(previous.publicKey), nextKey, rotatedAt };
  return { ...body, signature: signValue(previous.privateKey, statementOf(body)) };
}

/**
 * The newest key reachable from `pinned` through rotations each signed by the key before it
 * (pure: the device decides with what it already trusts). Returns `pinned` when none applies.
 */
export function followRotations(pinned: string, rotations: readonly KeyRotation[]): string {
  let current = pinned;
  const seen = new Set([keyId(pinned)]);
  for (;;) {
    const id = keyId(current);
    let publicKey: KeyObject;
    try {
      publicKey = loadPublicKey(current);
    } catch {
      return current;
    }
    const next = rotations.find((r) => r.previousKeyId === id && !seen.has(safeKeyId(r.nextKey)) && verifyValue(publicKey, statementOf(r), r.signature) && loads(r.nextKey));
    if (!next) return current;
    seen.add(keyId(next.nextKey));
    current = next.nextKey;
  }
}

function safeKeyId(key: string): string {
  try {
    return keyId(key);
  } catch {
    return '';
  }
}
function loads(key: string): boolean {
  try {
    loadPublicKey(key);
    return true;
  } catch {
    return false;
  }
}
