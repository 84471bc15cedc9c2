import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { followRotations } from '../../protocol/key-rotation.ts';
import type { SignedDesiredState } from '../../protocol/messages.ts';
import { generateKeyPair, keyId, loadPrivateKey, loadPublicKey, sessionChallenge, signText, verifyValue } from '../../protocol/signing.ts';
import { assembleServer } from '../assemble.ts';
import { hashToken } from '../auth/tokens.ts';
import { migrateToLatest } from '../store/migrate.ts';
import { openSqlite } from '../store/sqlite.ts';
import { createSqlStore } from '../store/store.ts';
import type { KeyPairText } from '../../protocol/signing.ts';
import { rotateSigningKey } from './signing-keys.ts';

test('a rotated signing key: documents signed anew, and a device that pinned the old key follows the rotation to the new one', async () => {
  const db = openSqlite(':memory:');
  await migrateToLatest(db);
  const store = createSqlStore(db);
  const START = Date.parse('2025-06-01T12:00:00.000Z');
  const nowIso = new Date(START).toISOString();
  await store.insertEnrollToken({ id: 'e', tokenHash: hashToken('enroll'), description: '', createdAt: nowIso, expiresAt: null, revokedAt: null });
  const first: KeyPairText = generateKeyPair();
  await store.setMeta('signing-key', JSON.stringify(first));
  const boot = (signing: KeyPairText) => assembleServer({ store, now: () => START, signing, sessionSecret: randomBytes(32), pollSeconds: 30, isOnline: () => true });

  const before = await boot(first);
  const device = generateKeyPair();
  const enrolled = await before.app.inject({ method: 'POST', url: '/v1/enroll', payload: { token: 'enroll', name: 'pos-01', labels: {}, publicKey: device.publicKey } });
  assert.equal(enrolled.statusCode, 201, enrolled.body);
  const pinned = (enrolled.json() as { serverKey: string }).serverKey;
  assert.equal(pinned, first.publicKey);
  await before.app.close();

  const second = generateKeyPair();
  const rotated = await rotateSigningKey(store, nowIso, second);
  assert.deepEqual(rotated, { previousKeyId: keyId(first.publicKey), keyId: keyId(second.publicKey) });
  assert.equal(JSON.parse((await store.getMeta('signing-key'))!).publicKey, second.publicKey);

  const after = await boot(second);
  const timestamp = nowIso;
  const session = await after.app.inject({ method: 'POST', url: '/v1/device/session', payload: { device: 'pos-01', timestamp, signature: signText(loadPrivateKey(device.privateKey), sessionChallenge('pos-01', timestamp)) } });
  const token = (session.json() as { token: string }).token;
  const auth = { authorization: `Bearer ${token}` };
  const doc = (await after.app.inject({ method: 'GET', url: '/v1/device/desired-state', headers: auth })).json() as SignedDesiredState;
  assert.equal(doc.keyId, keyId(second.publicKey), 'the stored document is signed by the new key');
  const { rotations } = (await after.app.inject({ method: 'GET', url: '/v1/device/keys', headers: auth })).json() as { rotations: [] };
  const followed = followRotations(pinned, rotations);
  assert.equal(followed, second.publicKey, 'the device pinned to the old key reaches the new one');
  assert.ok(verifyValue(loadPublicKey(followed), doc.payload, doc.signature));
  assert.equal(followRotations(generateKeyPair().publicKey, rotations) === second.publicKey, false, 'a device pinned to another key does not');
  await after.app.close();
  await db.destroy();
});
