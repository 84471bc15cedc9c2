import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { DriftlessError } from '../../protocol/errors.ts';
import type { SignedDesiredState } from '../../protocol/messages.ts';
import { componentReleaseProblem, releaseKeyRing, signRelease } from '../../protocol/release.ts';
import type { DeploymentResource, Template } from '../../protocol/resources.ts';
import { generateKeyPair, keyId, loadPrivateKey, loadPublicKey, verifyValue } from '../../protocol/signing.ts';
import { applyResources } from '../fleet/apply.ts';
import { createRolloutEngine } from '../rollout/rollout-engine.ts';
import { migrateToLatest } from '../store/migrate.ts';
import { openSqlite } from '../store/sqlite.ts';
import { createSqlStore, type Store } from '../store/store.ts';
import { createDesiredService, type DesiredService } from './desired-service.ts';
import { readReleaseKeys, settleReleaseKeys } from './release-keys.ts';

// The server's half of update trust: it refuses an unsigned release when it is applied, carries
// the operator's signed release and the release keys in every device's document, and re-issues
// each document before it expires, in the background.

const T0 = Date.parse('2025-06-02T10:00:00.000Z');
const HOUR = 3600_000;
const serverPair = generateKeyPair();
const releasePair = generateKeyPair();
const pinned = { key: loadPublicKey(serverPair.publicKey), keyId: keyId(serverPair.publicKey) };

function deployment(version: string, sign = true): DeploymentResource {
  const template: Template = { version, components: [{ name: 'web', command: ['/opt/web', version] }] };
  return {
    apiVersion: 'driftless/v1',
    kind: 'Deployment',
    metadata: { name: 'web' },
    spec: {
      selector: {},
      strategy: { waves: [{ percent: 100 }] },
      template: sign ? { ...template, release: signRelease(loadPrivateKey(releasePair.privateKey), releasePair.publicKey, 'web', template) } : template,
    },
  };
}

describe('desired state with releases and expiry', () => {
  let store: Store;
  let desired: DesiredService;
  let now = T0;
  let close: () => Promise<void>;

  beforeEach(async () => {
    now = T0;
    const db = openSqlite(':memory:');
    await migrateToLatest(db);
    store = createSqlStore(db);
    close = () => db.destroy();
    const releaseKeys = await settleReleaseKeys(store, [releasePair.publicKey]);
    const rollouts = createRolloutEngine({ isOnline: () => true });
    desired = createDesiredService({ signingKey: loadPrivateKey(serverPair.privateKey), keyId: pinned.keyId, rollouts, now: () => now, releaseKeys, validityMs: 24 * HOUR });
    await store.insertDevice({ name: 'pos-01', site: null, labels: {}, facts: {}, publicKey: 'k', status: 'accepted', enrolledAt: new Date(T0).toISOString(), lastSeen: new Date(T0).toISOString(), appliedGeneration: 0 });
    await desired.change(store, async (tx) => ({ result: await applyResources(tx, rollouts, [deployment('1')], new Date(now).toISOString()), devices: 'all' }));
  });
  afterEach(() => close());

  const served = () => JSON.parse(desired.served('pos-01')!.body) as unknown;

  test('the release keys are kept in the store: a restart without the flag keeps them', async () => {
    assert.deepEqual(await settleReleaseKeys(store, undefined), [releasePair.publicKey]);
    assert.deepEqual(await readReleaseKeys(store), [releasePair.publicKey]);
  });

  test('an unsigned or altered template is refused when applied, naming the attack', async () => {
    const rollouts = createRolloutEngine({ isOnline: () => true });
    const apply = (resource: DeploymentResource) => store.transaction((tx) => applyResources(tx, rollouts, [resource], new Date(now).toISOString()));
    await assert.rejects(apply(deployment('2', false)), (e: unknown) => e instanceof DriftlessError && e.code === 'release-unsigned' && /not signed by a release key/.test(e.message));
    const altered = deployment('2');
    altered.spec.template.components[0]!.command = ['/bin/evil'];
    await assert.rejects(apply(altered), (e: unknown) => e instanceof DriftlessError && e.code === 'release-unsigned' && /changed after it was signed/.test(e.message));
  });

  test("the device's document carries the release, the release keys and an expiry; both signatures hold", () => {
    const document = served() as SignedDesiredState;
    assert.equal(document.payload.expiresAt, new Date(T0 + 24 * HOUR).toISOString());
    assert.equal(document.payload.releases?.length, 1);
    assert.deepEqual(document.payload.releaseKeys, [releasePair.publicKey]);
    assert.ok(verifyValue(pinned.key, document.payload, document.signature));
    for (const component of document.payload.components) assert.equal(componentReleaseProblem(component, document.payload.releases ?? [], releaseKeyRing([releasePair.publicKey]), now), null);
  });

  test('renewal: nothing before half the validity; then a new generation with the same components and a fresh expiry', async () => {
    const first = served() as { payload: { generation: number; components: unknown[] } };
    now = T0 + 11 * HOUR;
    assert.equal(await desired.renew(store), 0);
    now = T0 + 12 * HOUR + 1;
    assert.equal(await desired.renew(store), 1);
    const renewed = served() as { payload: { generation: number; components: unknown[]; expiresAt: string } };
    assert.equal(renewed.payload.generation, first.payload.generation + 1);
    assert.deepEqual(renewed.payload.components, first.payload.components);
    assert.equal(renewed.payload.expiresAt, new Date(now + 24 * HOUR).toISOString());
    assert.equal(await desired.renew(store), 0, 'renewed once');
  });
});

describe('a second replica serving what the first stored', () => {
  test('reload serves the devices named, or every changed one; a document gone from the store is served no more', async () => {
    const db = openSqlite(':memory:');
    await migrateToLatest(db);
    const store = createSqlStore(db);
    try {
      const make = () => createDesiredService({ signingKey: loadPrivateKey(serverPair.privateKey), keyId: pinned.keyId, rollouts: createRolloutEngine({ isOnline: () => true }), now: () => T0 });
      const [first, second] = [make(), make()];
      const rollouts = createRolloutEngine({ isOnline: () => true });
      for (const name of ['pos-01', 'pos-02']) {
        await store.insertDevice({ name, site: null, labels: {}, facts: {}, publicKey: 'k', status: 'accepted', enrolledAt: new Date(T0).toISOString(), lastSeen: null, appliedGeneration: 0 });
      }
      await first.change(store, async (tx) => ({ result: await applyResources(tx, rollouts, [deployment('1', false)], new Date(T0).toISOString()), devices: 'all' }));
      assert.ok(first.served('pos-01'));
      assert.equal(second.served('pos-01'), undefined, 'nothing is served before it reads the store');

      assert.deepEqual(await second.reload(store, ['pos-01']), ['pos-01']);
      assert.equal(second.served('pos-01')?.body, first.served('pos-01')?.body);
      assert.equal(second.served('pos-02'), undefined, 'only the devices named');
      assert.deepEqual((await second.reload(store, 'all')).sort(), ['pos-02']);
      assert.equal(second.served('pos-02')?.etag, first.served('pos-02')?.etag);
      assert.deepEqual(await second.reload(store, 'all'), [], 'nothing changed since');

      await store.updateDevice('pos-02', { status: 'revoked' });
      await db.deleteFrom('device_desired').where('device', '=', 'pos-02').execute();
      assert.deepEqual(await second.reload(store, 'all'), ['pos-02']);
      assert.equal(second.served('pos-02'), undefined);
    } finally {
      await db.destroy();
    }
  });
});
