import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { signArtifact, type ArtifactRef } from '../../protocol/artifacts.ts';
import { sha256Hex } from '../../protocol/canonical.ts';
import type { DesiredComponent, DeviceEvent } from '../../protocol/messages.ts';
import { generateKeyPair, loadPrivateKey, loadPublicKey } from '../../protocol/signing.ts';
import { createMemoryStorage } from '../storage/memory-storage.ts';
import type { Storage } from '../storage/storage.ts';
import { createFileSlotBackend } from './file-backend.ts';
import type { LauncherMessage } from './launcher.ts';
import { createSelfUpdate, type SelfUpdateDeps } from './self-update.ts';
import { beginTrial, bootDecision, commit, initialSlotsState, revert, type SlotName, type SlotsState } from './slots.ts';

const keys = generateKeyPair();
const serverKey = loadPublicKey(keys.publicKey);
const T0 = Date.parse('2025-06-01T00:00:00.000Z');

function release(version: string, bytes = Buffer.from(`release ${version}`)): { ref: ArtifactRef; bytes: Buffer } {
  const statement = { name: 'driftless-agent', version, sha256: sha256Hex(bytes), size: bytes.length };
  return { ref: { ...statement, signature: signArtifact(loadPrivateKey(keys.privateKey), statement) }, bytes };
}

function agentComponent(ref: ArtifactRef): DesiredComponent {
  return { name: 'agent', deployment: 'fleet-agent', revision: 2, version: ref.version, agent: { artifact: ref.sha256 }, artifact: ref };
}

describe('agent self-update', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  /** One device: slots on disk, the state as the launcher would have written it, the messages it was sent. */
  function device(opts: { state?: SlotsState; slot?: SlotName | null; version?: string; launcher?: boolean; storage?: Storage; downloads?: Map<string, Buffer> } = {}) {
    const dir = mkdtempSync(join(tmpdir(), 'driftless-self-update-'));
    dirs.push(dir);
    const box = { state: opts.state ?? initialSlotsState(), now: T0 };
    const sent: LauncherMessage[] = [];
    const events: Omit<DeviceEvent, 'seq' | 'at'>[] = [];
    const fetched: string[] = [];
    const storage = opts.storage ?? createMemoryStorage();
    const backend = createFileSlotBackend(join(dir, 'slots'));
    const deps: SelfUpdateDeps = {
      readState: () => box.state,
      backend,
      runningSlot: opts.slot ?? null,
      runningVersion: opts.version ?? '0.1.0',
      launcher: opts.launcher === false ? null : { send: (m) => sent.push(m) },
      now: () => box.now,
      retryMs: 60_000,
    };
    const update = createSelfUpdate(deps);
    const downloads = opts.downloads ?? new Map<string, Buffer>();
    const pass = (desired: DesiredComponent[]) =>
      update.pass({
        desired,
        fetchArtifact: async (sha) => {
          fetched.push(sha);
          const bytes = downloads.get(sha);
          if (!bytes) throw new Error('not found');
          return bytes;
        },
        trustedKey: serverKey,
        storage,
        emit: (e) => events.push(e),
      });
    const status = (desired: DesiredComponent[]) => {
      const [s] = update.statuses(desired, () => new Date(T0).toISOString());
      return s ? { state: s.state, reason: s.reason, version: s.version, detail: s.detail } : null;
    };
    return { box, sent, events, fetched, storage, backend, downloads, update, pass, status };
  }

  test('a new release is downloaded, verified, written to the install slot, read back, and the launcher asked to switch once', async () => {
    const next = release('0.2.0');
    const d = device({ downloads: new Map([[next.ref.sha256, next.bytes]]) });
    const desired = [agentComponent(next.ref)];
    await d.pass(desired);
    assert.deepEqual(d.sent, [{ type: 'switch', slot: 'a', version: '0.2.0', sha256: next.ref.sha256 }]);
    assert.equal(d.backend.digest('a'), next.ref.sha256);
    assert.deepEqual(d.status(desired), { state: 'applying', reason: 'applying', version: '0.1.0', detail: 'updating the agent to version 0.2.0' });
    await d.pass(desired);
    assert.equal(d.sent.length, 1, 'asked once');
  });

  test('bytes that do not match their digest, or a signature by another key, are not installed; tried again only after a while', async () => {
    const next = release('0.2.0');
    const forged = { ...release('0.2.0').ref, signature: signArtifact(loadPrivateKey(generateKeyPair().privateKey), next.ref) };
    for (const [ref, bytes, why] of [
      [next.ref, Buffer.from('something else'), /is 14 bytes, expected 13/],
      [next.ref, Buffer.from('release 0.2.1'), /has SHA-256 [0-9a-f]{64}, expected/],
      [forged, next.bytes, /signature does not verify/],
    ] as const) {
      const d = device({ downloads: new Map([[ref.sha256, bytes]]) });
      await d.pass([agentComponent(ref)]);
      assert.deepEqual(d.sent, []);
      assert.equal(d.backend.digest('a'), null, 'nothing written');
      const status = d.status([agentComponent(ref)]);
      assert.equal(status?.state, 'failed');
      assert.equal(status?.reason, 'download-failed');
      assert.match(status?.detail ?? '', why);
      await d.pass([agentComponent(ref)]);
      assert.equal(d.fetched.length, 1, 'not again at once');
      d.box.now += 60_000;
      await d.pass([agentComponent(ref)]);
      assert.equal(d.fetched.length, 2, 'again after the retry interval');
    }
  });

  test('a release that failed its trial is not tried again; the failure is reported exactly once, across restarts', async () => {
    const bad = release('0.2.0');
    let state = beginTrial(initialSlotsState(), { slot: 'a', version: '0.2.0', sha256: bad.ref.sha256 }, T0, 30_000);
    state = revert(bootDecision(state, T0, 2).state, 'failed to start 2 times: exit code 1', T0 + 1000);
    const storage = createMemoryStorage();
    const desired = [agentComponent(bad.ref)];
    for (let restart = 0; restart < 2; restart++) {
      const d = device({ state, storage, downloads: new Map([[bad.ref.sha256, bad.bytes]]) });
      await d.pass(desired);
      await d.pass(desired);
      assert.deepEqual(d.fetched, [], 'no download');
      assert.deepEqual(d.sent, []);
      assert.deepEqual(
        d.events.map((e) => `${e.type} ${e.component}: ${e.message}`),
        restart === 0 ? ['agent-update-failed fleet-agent.agent: agent version 0.2.0 failed to start 2 times: exit code 1; the device returned to version 0.1.0 by itself'] : [],
      );
      assert.deepEqual(d.status(desired), { state: 'reverted', reason: 'start-failed', version: '0.1.0', detail: 'agent version 0.2.0 failed to start 2 times: exit code 1; reverted to version 0.1.0' });
    }
  });

  test('on trial: healthy is said once after a whole pass; after the commit it reports healthy and one agent-updated event', async () => {
    const next = release('0.2.0');
    const trial = bootDecision(beginTrial(initialSlotsState(), { slot: 'a', version: '0.2.0', sha256: next.ref.sha256 }, T0, 30_000), T0, 2).state;
    const d = device({ state: trial, slot: 'a', version: '0.2.0' });
    const desired = [agentComponent(next.ref)];
    await d.pass(desired);
    assert.deepEqual(d.sent, [], 'nothing to install: this is the release');
    assert.equal(d.status(desired)?.state, 'applying');
    d.update.passed();
    d.update.passed();
    assert.deepEqual(d.sent, [{ type: 'healthy' }]);
    d.box.state = commit(trial, 'a', T0 + 1000);
    await d.pass(desired);
    await d.pass(desired);
    assert.deepEqual(d.status(desired), { state: 'healthy', reason: null, version: '0.2.0', detail: null });
    assert.deepEqual(d.events.map((e) => e.type), ['agent-updated']);
  });

  test('the committed agent says nothing to the launcher; without a launcher the agent reports it cannot update', async () => {
    const next = release('0.2.0');
    const committed = commit(bootDecision(beginTrial(initialSlotsState(), { slot: 'a', version: '0.2.0', sha256: next.ref.sha256 }, T0, 30_000), T0, 2).state, 'a', T0);
    const d = device({ state: committed, slot: 'a', version: '0.2.0' });
    d.update.passed();
    assert.deepEqual(d.sent, []);

    const alone = device({ launcher: false, downloads: new Map([[next.ref.sha256, next.bytes]]) });
    await alone.pass([agentComponent(next.ref)]);
    assert.deepEqual(alone.fetched, []);
    assert.equal(alone.status([agentComponent(next.ref)])?.state, 'failed');
    assert.match(alone.status([agentComponent(next.ref)])?.detail ?? '', /without `driftless launcher`/);
    assert.deepEqual(alone.status([]), null, 'no agent component, no status');
  });

  test('a release already in the install slot is switched to without downloading it again', async () => {
    const next = release('0.2.0');
    const d = device();
    d.backend.install('a', next.bytes);
    await d.pass([agentComponent(next.ref)]);
    assert.deepEqual(d.fetched, []);
    assert.deepEqual(d.sent, [{ type: 'switch', slot: 'a', version: '0.2.0', sha256: next.ref.sha256 }]);
  });
});
