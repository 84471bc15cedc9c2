import assert from 'node:assert/strict';
import { test } from 'node:test';
import { followRotations, signRotation } from './key-rotation.ts';
import { generateKeyPair, loadPrivateKey } from './signing.ts';

const at = '2025-06-01T12:00:00.000Z';
const signer = (k: { privateKey: string; publicKey: string }) => ({ privateKey: loadPrivateKey(k.privateKey), publicKey: k.publicKey });

test('a device follows rotations signed by the key it trusts, one after another, and nothing else', () => {
  const [k1, k2, k3] = [generateKeyPair(), generateKeyPair(), generateKeyPair()];
  const r12 = signRotation(signer(k1), k2.publicKey, at);
  const r23 = signRotation(signer(k2), k3.publicKey, at);
  assert.equal(followRotations(k1.publicKey, [r23, r12]), k3.publicKey, 'in any order, to the newest');
  assert.equal(followRotations(k2.publicKey, [r12, r23]), k3.publicKey);
  assert.equal(followRotations(k3.publicKey, [r12, r23]), k3.publicKey, 'the newest stays');
  assert.equal(followRotations(k1.publicKey, []), k1.publicKey);

  const attacker = generateKeyPair();
  const forged = { ...signRotation(signer(attacker), attacker.publicKey, at), previousKeyId: r12.previousKeyId };
  assert.equal(followRotations(k1.publicKey, [forged]), k1.publicKey, 'a statement not signed by the pinned key moves nothing');
  assert.equal(followRotations(k1.publicKey, [{ ...r12, nextKey: attacker.publicKey }]), k1.publicKey, 'an altered next key breaks the signature');
  const back = signRotation(signer(k2), k1.publicKey, at);
  assert.equal(followRotations(k1.publicKey, [r12, back]), k2.publicKey, 'a loop ends');
});
