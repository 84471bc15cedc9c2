import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { DeviceView } from '../../src/protocol/resources.ts';
import { findProcesses, isAlive, workloadVersions } from '../support/child.ts';
import { startDesiredStateProxy, type DesiredStateProxy } from '../support/desired-state-proxy.ts';
import { assertBusybox, componentOf, createFleet, sleeperManifest, uniqueTag, type AgentHandle, type Fleet } from '../support/fleet.ts';
import { waitFor } from '../support/wait.ts';

// The agent trusts only what the server signed, for this device, newer than what it has. A proxy
// between a real agent and the real server forges the desired-state documents; the agent refuses
// each, keeps running what it trusted, and tells the server why.

const tag = uniqueTag();
const device = `trust-${tag}`;
const DEPLOYMENT = `app-${tag}`;
/** What an attacker would have the device run; it must never start. */
const EVIL = ['/bin/busybox', 'sleep', '7777'];

const manifest = (version: string) => sleeperManifest(DEPLOYMENT, `trust-${tag}`, version);

/** The workload process of the device and the version in its environment. */
const workload = () => workloadVersions(device);

describe('trust: forged desired state is refused and reported', { timeout: 240_000 }, () => {
  let fleet: Fleet;
  let proxy: DesiredStateProxy;
  let agent: AgentHandle;
  let trustedPid = 0;
  let firstDocument: unknown;

  const at = (version: string, state = 'healthy') => (ds: DeviceView[]) => {
    const c = componentOf(ds.find((d) => d.name === device), 'app');
    return c?.state === state && c.version === version && c.desiredVersion === version;
  };
  const apply = async (version: string) => {
    const result = await fleet.cli(['apply', '-f', fleet.writeFile(`app-${version}.yaml`, manifest(version))]);
    assert.equal(result.code, 0, result.stderr);
  };

  before(async () => {
    assertBusybox();
    fleet = createFleet('trust');
    fleet.own(device);
    await fleet.startServer();
    proxy = await startDesiredStateProxy(fleet.url);
    agent = fleet.startAgent({ name: device, labels: { tier: `trust-${tag}` }, serverUrl: proxy.url });
    await fleet.waitForDevices('the agent to enrol through the proxy', (ds) => ds.some((d) => d.name === device && d.online));

    await apply('1');
    await fleet.waitForDevices('version 1 healthy', at('1'));
    firstDocument = proxy.documents.at(-1)!.document;
    await apply('2');
    await fleet.waitForDevices('version 2 healthy', at('2'));
    const running = await waitFor('one workload process on version 2', workload, (w) => w.pids.length === 1 && w.versions[0] === '2');
    trustedPid = running.pids[0]!;
  });

  after(async () => {
    await fleet?.cleanup();
    await proxy?.close();
  });

  /** The agent refuses what the proxy now serves, names `reason` to the server, and keeps what it trusted. */
  async function expectRefusal(reason: string): Promise<void> {
    const detail = await waitFor(
      `a desired-state-refused event naming ${reason}`,
      () => fleet.deviceDetail(device),
      (d) => d.events.some((e) => e.type === 'desired-state-refused' && e.message.includes(reason)),
      { context: () => `proxy served ${proxy.rewrites()} forged documents\n${fleet.diagnostics()}` },
    );
    assert.ok(proxy.rewrites() > 0, 'the agent did fetch the forged document');
    const event = detail.events.find((e) => e.type === 'desired-state-refused' && e.message.includes(reason))!;
    assert.match(event.message, /refused desired state/);

    // Still what it trusted: the same process, never restarted, never the attacker's command.
    assert.ok(isAlive(trustedPid), `the trusted workload (pid ${trustedPid}) still runs`);
    assert.deepEqual(workload(), { pids: [trustedPid], versions: ['2'] });
    const app = componentOf(detail, 'app');
    assert.equal(app?.version, '2', `the device reports version 2 running: ${JSON.stringify(app)}`);
    assert.equal(detail.appliedGeneration, proxy.documents.at(-1)!.generation, 'the device still applies the last genuine document it trusted');
    assert.doesNotMatch(agent.child.stderr(), /applying version 3/);
    assert.ok(agent.child.running(), `the agent keeps running:\n${agent.child.tail()}`);
  }

  it('refuses a tampered document (payload changed, signature kept)', async () => {
    // The operator releases version 3; on the way, the attacker rewrites it to run something else.
    proxy.setMode({ kind: 'tamper', change: (payload) => ((payload.components as { command: string[] }[])[0]!.command = EVIL) });
    await apply('3');
    await expectRefusal('bad-signature');
  });

  it('refuses an unsigned document', async () => {
    proxy.setMode({ kind: 'unsigned' });
    await expectRefusal('unsigned');
  });

  it('refuses a replayed older generation', async () => {
    proxy.setMode({ kind: 'replay', document: firstDocument });
    await expectRefusal('older-generation');
  });

  it('takes the genuine document once the forgeries stop', async () => {
    proxy.setMode({ kind: 'pass' });
    await fleet.waitForDevices('version 3 healthy through the honest proxy', at('3'));
    const running = await waitFor('the workload on version 3', workload, (w) => w.pids.length === 1 && w.versions[0] === '3');
    assert.notEqual(running.pids[0], trustedPid);
    const evil = findProcesses(({ env }) => env.includes(`DRIFTLESS_AGENT=${device}`)).filter((pid) => readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(EVIL[2]!));
    assert.deepEqual(evil, [], 'the forged command never ran');
  });

  it('an agent with a wrong enrollment token exits non-zero with one line naming the enrollment token', async () => {
    const intruder = `trust-${tag}-intruder`;
    fleet.own(intruder);
    const child = fleet.startAgent({ name: intruder, enrollToken: 'not-the-token' }).child;
    const exit = await child.exited;
    assert.notEqual(exit.code, 0, `exit ${JSON.stringify(exit)}`);
    const lines = child.stderr().trimEnd().split('\n');
    assert.equal(lines.length, 1, `one line on stderr, got:\n${child.stderr()}`);
    assert.match(lines[0]!, /enrollment token/);
    assert.ok(!(await fleet.devices()).some((d) => d.name === intruder), 'the intruder is not enrolled');
  });
});
