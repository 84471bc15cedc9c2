import { loadPrivateKey, generateKeyPair, keyId, signValue, type KeyPairText } from '../../protocol/signing.ts';
import { signArtifact } from '../../protocol/artifacts.ts';
import { KeyRotation, signRotation } from '../../protocol/key-rotation.ts';
import { isValid } from '../../protocol/validate.ts';
import type { Store } from '../store/store.ts';

const KEY = 'signing-key';
const ROTATIONS = 'signing-key-rotations';

/** Every rotation of the server's signing key so far, oldest first: what a device follows from the key it pinned. */
export async function loadRotations(store: Store): Promise<KeyRotation[]> {
  const text = await store.getMeta(ROTATIONS);
  const parsed: unknown = text ? JSON.parse(text) : [];
  return Array.isArray(parsed) ? parsed.filter((r): r is KeyRotation => isValid(KeyRotation, r)) : [];
}

/**
 * Replaces the server's signing key, in one transaction: a new key pair, a rotation statement
 * signed by the old key (kept, with every earlier one, for devices to follow), and every tenant's
 * artifacts signed anew. Desired-state documents are signed anew when the server next starts
 * (`resign` in the desired service); devices re-pin when they meet the new key.
 */
export async function rotateSigningKey(store: Store, nowIso: string, next: KeyPairText = generateKeyPair()): Promise<{ previousKeyId: string; keyId: string }> {
  return store.transaction(async (tx) => {
    const text = await tx.getMeta(KEY);
    if (!text) throw new Error('this server has no signing key yet: start it once first');
    const previous = JSON.parse(text) as KeyPairText;
    const rotation = signRotation({ privateKey: loadPrivateKey(previous.privateKey), publicKey: previous.publicKey }, next.publicKey, nowIso);
    await tx.setMeta(ROTATIONS, JSON.stringify([...(await loadRotations(tx)), rotation]));
    await tx.setMeta(KEY, JSON.stringify(next));
    const signingKey = loadPrivateKey(next.privateKey);
    for (const tenant of await tx.listTenants()) {
      const view = tx.forTenant(tenant.name);
      for (const a of await view.listArtifacts()) {
        await view.setArtifactSignature(a.sha256, signArtifact(signingKey, { name: a.name, version: a.version, sha256: a.sha256, size: a.size }));
      }
    }
    return { previousKeyId: keyId(previous.publicKey), keyId: keyId(next.publicKey) };
  });
}

/**
 * After a rotation: every stored desired-state document still signed by an earlier key is signed
 * anew by the current one, unchanged otherwise (same generation, same content), so a device that
 * enrolled after the rotation can trust it, and one that pinned the old key follows the rotation
 * and finds the same document. Returns how many were signed anew.
 */
export async function resignDesired(store: Store, signing: KeyPairText): Promise<number> {
  const current = keyId(signing.publicKey);
  const signingKey = loadPrivateKey(signing.privateKey);
  let count = 0;
  await store.transaction(async (tx) => {
    for (const record of await tx.listDesired()) {
      if (record.document.keyId === current) continue;
      const document = { ...record.document, keyId: current, signature: signValue(signingKey, record.document.payload) };
      await tx.putDesired({ ...record, document });
      count++;
    }
  });
  return count;
}
