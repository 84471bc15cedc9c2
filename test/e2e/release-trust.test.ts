import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import type { DesiredState } from '../../src/protocol/messages.ts';
import type { DeviceView } from '../../src/protocol/resources.ts';
import { generateKeyPair, keyId, loadPrivateKey, signValue } from '../../src/protocol/signing.ts';
import { findProcesses, isAlive, workloadVersions } from '../support/child.ts';
import { startDesiredStateProxy, type DesiredStateProxy } from '../support/desired-state-proxy.ts';
import { assertBusybox, componentOf, createFleet, sleeperManifest, uniqueTag, type AgentHandle, type Fleet } from '../support/fleet.ts';
import { waitFor } from '../support/wait.ts';

// Update trust in the shape of TUF and Uptane, against real processes. The operator signs each
// release with an offline release key (`driftless release sign`); the server signs every device's
// document with its online key. A proxy between the agent and the server plays the attacker: it
// replays, withholds and re-orders genuine documents, lets one expire, signs with a foreign key,
// and finally holds the server's own key, read from its database as a thief would. Every forgery
// is refused by name, the workload never changes, and the same holds after the agent restarts,
// with an old copy of its desired state put back on its disk.

const tag = uniqueTag();
const device = `rtrust-${tag}`;
const DEPLOYMENT = `rel-${tag}`;
const EVIL = ['/bin/busybox', 'sleep', '6666'];

const manifest = (version: string) => sleeperManifest(DEPLOYMENT, `rtrust-${tag}`, version);

const workload = () => workloadVersions(device);

type Doc = { payload: DesiredState; keyId: string; signature: string };

describe('release trust: nothing runs that no operator released', { timeout: 300_000 }, () => {
  let fleet: Fleet;
  let proxy: DesiredStateProxy;
  let agent: AgentHandle;
  let keys: string;
  let trustedPid = 0;
  let trustedVersion = '';
  let firstDocument: Doc;
  /** The server's online key, as a thief who copied its database holds it. */
  let stolen: { keyId: string; sign: (payload: unknown) => string };

  const at = (version: string) => (ds: DeviceView[]) => {
    const c = componentOf(ds.find((d) => d.name === device), 'app');
    return c?.state === 'healthy' && c.version === version && c.desiredVersion === version;
  };
  const release = async (version: string) => {
    const file = fleet.writeFile(`app-${version}.yaml`, manifest(version));
    const signed = await fleet.cli(['release', 'sign', '-f', file, '--key', join(keys, 'release.key')], { raw: true });
    assert.equal(signed.code, 0, signed.stderr);
    const applied = await fleet.cli(['apply', '-f', file]);
    assert.equal(applied.code, 0, applied.stderr);
  };
  const runningNow = async (version: string) => {
    await fleet.waitForDevices(`version ${version} healthy`, at(version));
    const running = await waitFor(`one workload on version ${version}`, workload, (w) => w.pids.length === 1 && w.versions[0] === version);
    trustedPid = running.pids[0]!;
    trustedVersion = version;
  };
  /** The server's newest genuine document, as the proxy last passed or withheld it. */
  const latest = (): Doc => [...proxy.documents, ...proxy.withheld].sort((a, b) => a.generation - b.generation).at(-1)!.document as unknown as Doc;
  /** A document made from the genuine one and signed with the stolen server key. */
  const resign = (change: (payload: DesiredState) => void) => (genuine: Record<string, unknown>) => {
    const payload = structuredClone((genuine as unknown as Doc).payload);
    change(payload);
    return { payload, keyId: stolen.keyId, signature: stolen.sign(payload) };
  };

  before(async () => {
    assertBusybox();
    fleet = createFleet('release-trust');
    fleet.own(device);
    keys = join(fleet.dir, 'release-keys');
    const keygen = await fleet.cli(['release', 'keygen', '--out', keys], { raw: true });
    assert.equal(keygen.code, 0, keygen.stderr);
    await fleet.startServer({ extraArgs: ['--release-key', join(keys, 'release.pub')] });
    proxy = await startDesiredStateProxy(fleet.url);
    agent = fleet.startAgent({ name: device, labels: { tier: `rtrust-${tag}` }, serverUrl: proxy.url });
    await fleet.waitForDevices('the agent to enrol through the proxy', (ds) => ds.some((d) => d.name === device && d.online));

    await release('1');
    await runningNow('1');
    firstDocument = proxy.documents.at(-1)!.document as unknown as Doc;
    await release('2');
    await runningNow('2');

    // The thief's copy of the server's database: whichever stored key pair signs the documents.
    const db = new DatabaseSync(join(fleet.server!.dataDir, 'driftless.db'), { readOnly: true });
    const rows = db.prepare('SELECT value FROM meta').all() as { value: string }[];
    db.close();
    const docKeyId = latest().keyId;
    const pair = rows
      .flatMap((r) => {
        try {
          const v = JSON.parse(r.value) as unknown;
          return (Array.isArray(v) ? v : [v]) as { privateKey?: string; publicKey?: string }[];
        } catch {
          return [];
        }
      })
      .find((v) => typeof v?.privateKey === 'string' && typeof v.publicKey === 'string' && keyId(v.publicKey) === docKeyId);
    assert.ok(pair, 'the server signing key is in its database');
    const privateKey = loadPrivateKey(pair.privateKey!);
    stolen = { keyId: docKeyId, sign: (payload) => signValue(privateKey, payload) };
  });

  after(async () => {
    await fleet?.cleanup();
    await proxy?.close();
  });

  /** Each attack is answered by one new refusal event naming it (the agent reports a repeated refusal once). */
  async function expectRefusal(code: string, attack: string): Promise<void> {
    const fresh = (d: Awaited<ReturnType<Fleet['deviceDetail']>>) => d.events.find((e) => e.type === 'desired-state-refused' && e.message.includes(`(${code})`) && !seen.has(e.seq));
    const detail = await waitFor(`a desired-state-refused event naming ${code} (${attack})`, () => fleet.deviceDetail(device), (d) => fresh(d) !== undefined, {
      timeoutMs: 60_000,
      context: () => `proxy served ${proxy.rewrites()} forged documents\n${fleet.diagnostics()}`,
    });
    seen.add(fresh(detail)!.seq);
    assert.ok(proxy.rewrites() > 0, 'the agent did fetch the forgery');
    assert.ok(isAlive(trustedPid), `the trusted workload (pid ${trustedPid}) still runs`);
    assert.deepEqual(workload(), { pids: [trustedPid], versions: [trustedVersion] }, `nothing changed on the device after the ${attack}`);
    assert.ok(agent.child.running(), `the agent keeps running:\n${agent.child.tail()}`);
  }
  const seen = new Set<number>();

  it('the server refuses a Deployment that is not signed by the release key, naming it', async () => {
    const file = fleet.writeFile('unsigned.yaml', manifest('9'));
    const result = await fleet.cli(['apply', '-f', file]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /not signed by a release key/);
  });

  it('replayed: an earlier genuine document is refused (older-generation)', async () => {
    proxy.setMode({ kind: 'replay', document: firstDocument });
    await expectRefusal('older-generation', 'replay');
  });

  it('re-ordered: two genuine documents delivered newest first; the older one is refused (older-generation)', async () => {
    proxy.setMode({ kind: 'withhold' });
    const issued = (version: string) => () => proxy.withheld.find((w) => (w.document as unknown as Doc).payload.components[0]?.env?.APP_VERSION === version);
    await release('3');
    const three = await waitFor('the server to issue version 3', issued('3'), (w) => w !== undefined);
    await release('4');
    const four = await waitFor('the server to issue version 4', issued('4'), (w) => w !== undefined);
    assert.ok(three && four && three.generation < four.generation);
    proxy.setMode({ kind: 'replay', document: four.document });
    await runningNow('4');
    proxy.setMode({ kind: 'replay', document: three.document });
    await expectRefusal('older-generation', 're-ordering');
  });

  it('older: a document validly signed with the server key but an older generation is refused (older-generation)', async () => {
    // Three back: a generation neither the replay nor the re-ordering used, so the refusal is a new one.
    proxy.setMode({ kind: 'forge', forge: resign((p) => (p.generation = Math.max(1, p.generation - 3))) });
    await expectRefusal('older-generation', 'older document');
  });

  it('same generation, other content is refused (replayed-generation)', async () => {
    proxy.setMode({ kind: 'forge', forge: resign((p) => (p.issuedAt = '2020-01-01T00:00:00.000Z')) });
    await expectRefusal('replayed-generation', 'substituted document');
  });

  it('expired: a newer document past its expiry is refused (expired-desired-state); what runs keeps running', async () => {
    proxy.setMode({
      kind: 'forge',
      forge: resign((p) => {
        p.generation += 1;
        p.expiresAt = new Date(Date.now() - 60_000).toISOString();
      }),
    });
    await expectRefusal('expired-desired-state', 'expired document');
  });

  it('foreign-signed: a document signed by a key that is not the pinned server key is refused (unknown-key)', async () => {
    const foreign = generateKeyPair();
    const foreignKey = loadPrivateKey(foreign.privateKey);
    proxy.setMode({
      kind: 'forge',
      forge: (genuine) => {
        const payload = { ...(genuine as unknown as Doc).payload, generation: (genuine as unknown as Doc).payload.generation + 1 };
        return { payload, keyId: keyId(foreign.publicKey), signature: signValue(foreignKey, payload) };
      },
    });
    await expectRefusal('unknown-key', 'foreign signature');
  });

  it('stolen online key: a validly signed document running something no release signed is refused (release-mismatch)', async () => {
    proxy.setMode({
      kind: 'forge',
      forge: resign((p) => {
        p.generation += 1;
        p.components[0]!.command = EVIL;
      }),
    });
    await expectRefusal('release-mismatch', 'stolen key, altered component');
  });

  it('stolen online key: dropping the releases does not help (release-unsigned: "not signed by a release key")', async () => {
    proxy.setMode({
      kind: 'forge',
      forge: resign((p) => {
        p.generation += 2;
        p.components[0]!.command = EVIL;
        p.components[0]!.version = '6.6.6';
        delete p.releases;
        delete p.releaseKeys;
      }),
    });
    await expectRefusal('release-unsigned', 'stolen key, unsigned release');
    const detail = await fleet.deviceDetail(device);
    assert.ok(detail.events.some((e) => e.type === 'desired-state-refused' && /not signed by a release key/.test(e.message)));
  });

  it('after an agent restart, with an old desired state put back on its disk: still refused, workload unchanged', async () => {
    await agent.kill();
    assert.ok(isAlive(trustedPid), 'the workload outlives its agent');
    // The old copy: the first document this device trusted, as an attacker with the disk (or a backup restore) would put it back.
    writeFileSync(join(agent.dataDir, 'desired.json'), `${JSON.stringify(firstDocument)}\n`);
    agent = fleet.startAgent({ name: device, labels: { tier: `rtrust-${tag}` }, serverUrl: proxy.url, dataDir: agent.dataDir });
    await expectRefusal('older-generation', 'restored old desired state after restart');
    await expectRefusal('release-unsigned', 'stolen key after restart');
    assert.doesNotMatch(agent.child.stderr(), /trusted desired state generation/, 'nothing forged was trusted after the restart');
  });

  it('takes the genuine document once the attacks stop; no forged command ever ran', async () => {
    copyFileSync(join(agent.dataDir, 'trust.json'), join(fleet.dir, 'trust-after-attacks.json'));
    proxy.setMode({ kind: 'pass' });
    await fleet.waitForDevices('version 4 healthy through the honest proxy', at('4'));
    assert.deepEqual(workload(), { pids: [trustedPid], versions: ['4'] }, 'the same process: the genuine document is what it ran');
    await release('5');
    await runningNow('5');
    const evil = findProcesses(({ env }) => env.includes(`DRIFTLESS_AGENT=${device}`)).filter((pid) => readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(EVIL[2]!));
    assert.deepEqual(evil, [], 'the forged command never ran');
  });
});
