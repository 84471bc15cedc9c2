import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { DeviceView, DriftEntry } from '../../src/protocol/resources.ts';
import { type AgentHandle, componentOf, createFleet, everyDevice, type Fleet, uniqueTag } from '../support/fleet.ts';
import { AGENT_LABEL, agentContainers, assertPodmanReady, hostPortOf, podmanSocketPath, TEST_IMAGE_PORT, TEST_IMAGES } from '../support/podman.ts';
import { waitFor } from '../support/wait.ts';

// A bad release stops itself: four real agent processes on Podman, a Deployment whose strategy is a
// one-device canary and then everyone, with no failure tolerated. The bad image answers 404 on
// /healthz, so the canary's agent reverts it on its own; the server sees the failure, halts the
// rollout after its first wave and rolls the canary back, and the three other devices never touch
// the bad image.
//
// "Never pulled" on one shared Podman host cannot be read from image presence (the image is built
// locally and is present for everyone). The evidence, per device, strongest first:
//   1. Podman's own event log: no container labelled with that device's agent was ever created,
//      started or run from the bad image (the image is tagged under a name unique to this run, so
//      no other test's events can be mistaken for ours) — and its version-1 container is the very
//      same container (same ID) before and after the bad release: never replaced.
//   2. The agent's own log (its stderr): it never names the bad image and never applies the bad version.
//   3. The server's record: the rollout lists only the canary as reached; watching the device list
//      throughout the release, the device's desired version was never the bad one.
// The canary is the positive control: the same evidence shows it did create and run the bad image,
// so a check that cannot see anything would fail here.

const tag = uniqueTag();
const names = [1, 2, 3, 4].map((i) => `rh-${tag}-${i}`);
const DEPLOYMENT = `halt-${tag}`;
const BAD_IMAGE = `localhost/driftless-web:bad-${tag}`;
const STRATEGY = '{ waves: [{ devices: 1 }, { percent: 100 }], maxFailurePercent: 0, onFailure: rollback }';

function manifest(version: string, image: string): string {
  return `apiVersion: driftless/v1
kind: Deployment
metadata:
  name: ${DEPLOYMENT}
spec:
  selector:
    matchLabels: { tier: rh-${tag} }
  strategy: ${STRATEGY}
  template:
    version: "${version}"
    components:
      - name: web
        image: ${image}
        ports: ["${TEST_IMAGE_PORT}"]
        health:
          http: { port: ${TEST_IMAGE_PORT}, path: /healthz }
          timeoutSeconds: 8
          intervalSeconds: 0.5
`;
}

/** The Docker Engine API on Podman's socket (the same API the agents use). */
function engine(method: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: podmanSocketPath(), path, method, agent: false, timeout: 30_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

type EngineEvent = { Type: string; Action: string; timeNano: number; Actor: { ID: string; Attributes: Record<string, string> } };

/** Every event Podman recorded from `sinceMs` on (to the nanosecond; the API filters by whole seconds). */
async function engineEvents(filters: Record<string, string[]>, sinceMs: number): Promise<EngineEvent[]> {
  const query = `since=${Math.floor(sinceMs / 1000) - 1}&until=${Math.ceil(Date.now() / 1000) + 1}&stream=false&filters=${encodeURIComponent(JSON.stringify(filters))}`;
  const answer = await engine('GET', `/events?${query}`);
  assert.equal(answer.status, 200, `events ${JSON.stringify(filters)}: ${answer.body}`);
  return answer.body
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as EngineEvent)
    .filter((e) => e.timeNano >= sinceMs * 1e6);
}

/** Every container event for containers labelled as this agent's. */
const containerEvents = (agent: string, sinceMs: number) => engineEvents({ type: ['container'], label: [`${AGENT_LABEL}=${agent}`] }, sinceMs);

/** The image names (and IDs, whichever the engine records) of the bad image. */
async function badImageRefs(): Promise<string[]> {
  const answer = await engine('GET', `/images/${encodeURIComponent(BAD_IMAGE)}/json`);
  assert.equal(answer.status, 200, answer.body);
  const image = JSON.parse(answer.body) as { Id: string };
  return [BAD_IMAGE, image.Id, image.Id.replace(/^sha256:/, '')];
}

async function serving(device: string): Promise<{ id: string | null; image: string | null; version: string | null; containers: number }> {
  const containers = await agentContainers(device);
  const running = containers.filter((c) => c.State === 'running');
  if (running.length !== 1) return { id: null, image: null, version: null, containers: containers.length };
  const only = running[0]!;
  let version: string | null = null;
  try {
    const answer = await fetch(`http://127.0.0.1:${hostPortOf(only)}/version`, { signal: AbortSignal.timeout(3000) });
    version = answer.ok ? (await answer.text()).trim() : `HTTP ${answer.status}`;
  } catch (error) {
    version = `unreachable: ${(error as Error).message}`;
  }
  return { id: only.Id, image: only.Image, version, containers: containers.length };
}

type RolloutDetail = {
  name: string;
  state: string;
  reason: string | null;
  waves: { index: number; devices: number; updated: number; failed: number; state: string }[];
  timeline: { at: string; message: string }[];
  devices: { device: string; wave: number; status: string; why: string; detail: string | null }[];
  incident: { id: string; state: string; title: string } | null;
};

describe('a bad release halts after its canary and is rolled back (real agents, Podman)', { timeout: 300_000 }, () => {
  let fleet: Fleet;
  let tagged = false;
  const agents = new Map<string, AgentHandle>();
  /** One agent's whole stderr, as its process wrote it. */
  const agentLog = (device: string) => agents.get(device)!.child.stderr();

  before(async () => {
    await assertPodmanReady([TEST_IMAGES.v1, TEST_IMAGES.bad]);
    // The bad image under a name of this run only: Podman's events then name it unambiguously.
    const [repo, source] = ['localhost/driftless-web', TEST_IMAGES.bad];
    const exists = await engine('GET', `/images/${encodeURIComponent(BAD_IMAGE)}/json`);
    assert.equal(exists.status, 404, `${BAD_IMAGE} must not exist before the test`);
    const made = await engine('POST', `/images/${encodeURIComponent(source)}/tag?repo=${encodeURIComponent(repo)}&tag=${encodeURIComponent(`bad-${tag}`)}`);
    assert.ok(made.status === 201 || made.status === 200, `tagging ${BAD_IMAGE}: HTTP ${made.status} ${made.body}`);
    tagged = true;

    fleet = createFleet('rollout-halt');
    fleet.own(...names);
    await fleet.startServer();
    names.forEach((name, i) => agents.set(name, fleet.startAgent({ name, site: `rh-site-${tag}-${i + 1}`, labels: { tier: `rh-${tag}` } })));
    await fleet.waitForDevices('four agents to enrol and come online', (ds) => names.every((n) => ds.some((d) => d.name === n && d.online)));
  });

  after(async () => {
    await fleet?.cleanup();
    // Untag only our name; the image itself keeps its other names.
    if (tagged) await engine('DELETE', `/images/${encodeURIComponent(BAD_IMAGE)}`).catch(() => undefined);
  });

  const mine = (ds: DeviceView[]) => ds.filter((d) => names.includes(d.name));
  const rollout = async (revision: number) => {
    const answer = await fleet.api(`/v1/rollouts/${DEPLOYMENT}-${revision}`);
    if (answer.status !== 200) throw new Error(`GET rollout: ${answer.status} ${answer.text}`);
    return answer.body as RolloutDetail;
  };

  let before1: Record<string, Awaited<ReturnType<typeof serving>>> = {};

  it('version 1 reaches every device, canary first, and runs healthy', async () => {
    await fleet.apply('v1.yaml', manifest('1', TEST_IMAGES.v1));
    await fleet.waitForDevices('all four healthy on version 1', everyDevice(names, 'web', (c) => c.state === 'healthy' && c.version === '1' && c.desiredVersion === '1'));
    const first = await waitFor('rollout 1 to complete', () => rollout(1), (r) => r.state === 'complete', { context: () => fleet.diagnostics() });
    assert.deepEqual(first.waves.map((w) => [w.devices, w.updated, w.state]), [[1, 1, 'complete'], [3, 3, 'complete']]);
    before1 = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await serving(n)] as const)));
    for (const n of names) assert.equal(before1[n]!.version, '1', `${n}: ${JSON.stringify(before1[n])}`);
  });

  it('the bad release halts after its first wave, the canary is rolled back, and no other device ever touches the bad image', async () => {
    const since = Date.now();
    const stderrBefore = Object.fromEntries(names.map((n) => [n, agentLog(n).length]));
    // Watch what the server tells every device, all through the release.
    const desiredSeen = new Map<string, Set<string>>(names.map((n) => [n, new Set<string>()]));
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        try {
          for (const d of mine(await fleet.devices())) for (const c of d.components) if (c.desiredVersion) desiredSeen.get(d.name)!.add(c.desiredVersion);
        } catch {
          // The next round sees it.
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    })();

    try {
      const applied = await fleet.apply('bad.yaml', manifest('bad', BAD_IMAGE));
      assert.match(applied.stdout, /configured \(revision 2\)/);

      const done = await waitFor('the bad rollout to end rolled-back', () => rollout(2), (r) => r.state === 'rolled-back', {
        timeoutMs: 120_000,
        intervalMs: 500,
        context: () => fleet.diagnostics(),
      });

      // The server's record: exactly one device ever got revision 2, and the second wave never started.
      assert.equal(done.devices.length, 1, `devices reached: ${JSON.stringify(done.devices)}`);
      const canary = done.devices[0]!.device;
      assert.ok(names.includes(canary));
      assert.equal(done.devices[0]!.wave, 1);
      assert.equal(done.devices[0]!.status, 'recovered');
      assert.match(done.devices[0]!.why, /^canary: /);
      assert.match(done.reason ?? '', /^halted: 1 of 1 devices in wave 1 failed \(100\.0% > 0%\); rolled back$/);
      assert.deepEqual(done.waves.map((w) => [w.index, w.devices, w.updated, w.state]), [[0, 1, 0, 'rolled-back'], [1, 3, 0, 'skipped']]);
      const messages = done.timeline.map((t) => t.message);
      for (const expected of [/^rollout of revision 2 started \(from revision 1\)$/, /^wave 1 of 2 started: 1 device$/, new RegExp(`^${canary} failed: web: .*(healthz|404|health)`), /^threshold crossed: /, /^halted; rolling back/, /^rollback done: 1 of 1 devices recovered on the previous revision$/]) {
        assert.ok(messages.some((m) => expected.test(m)), `timeline lacks ${expected}:\n${messages.join('\n')}`);
      }
      assert.ok(!messages.some((m) => /^wave 2 /.test(m)), 'wave 2 never started');
      assert.deepEqual(done.incident && { id: done.incident.id, state: done.incident.state }, { id: `${DEPLOYMENT}-2-incident`, state: 'resolved' });
      const md = await fleet.api(`/v1/incidents/${DEPLOYMENT}-2-incident/markdown`);
      assert.equal(md.status, 200);
      assert.match(md.text, /threshold crossed/);

      // `rollout status -o json`, the documented shape.
      const status = await fleet.cliJson<Record<string, unknown>>(['rollout', 'status', DEPLOYMENT, '-o', 'json']);
      assert.deepEqual(Object.keys(status), ['name', 'deployment', 'revision', 'state', 'waves', 'reason']);
      assert.deepEqual([status.name, status.revision, status.state], [`${DEPLOYMENT}-2`, 2, 'rolled-back']);

      // The canary runs version 1 again: reported, and really serving it.
      const back = await fleet.waitForDevices('the canary to report version 1 healthy as desired', (ds) => {
        const c = componentOf(ds.find((d) => d.name === canary), 'web');
        return c?.state === 'healthy' && c.version === '1' && c.desiredVersion === '1';
      });
      assert.ok(back);
      const canaryNow = await waitFor('the canary to serve version 1 from one container', () => serving(canary), (s) => s.version === '1' && s.containers === 1);
      assert.equal(canaryNow.image, TEST_IMAGES.v1);

      // Positive control: the evidence does see the bad image where it was used.
      const refs = await badImageRefs();
      const usesBad = (e: EngineEvent) => refs.includes(e.Actor.Attributes.image ?? '');
      const canaryEvents = await containerEvents(canary, since);
      assert.ok(canaryEvents.some((e) => e.Action === 'create' && usesBad(e)), `the canary's container events name the bad image: ${JSON.stringify(canaryEvents.map((e) => [e.Action, e.Actor.Attributes.image]))}`);
      const canaryLog = agentLog(canary).slice(stderrBefore[canary]);
      assert.ok(canaryLog.includes(BAD_IMAGE), `the canary's log names the bad image:\n${canaryLog.slice(-3000)}`);
      assert.ok(desiredSeen.get(canary)!.has('bad'), 'the watcher saw the canary being told to run it');

      for (const device of names.filter((n) => n !== canary)) {
        // 1. Podman: no container of this device was created or run from the bad image; its version-1 container was never replaced.
        const events = await containerEvents(device, since);
        assert.deepEqual(events.filter(usesBad).map((e) => e.Action), [], `${device} has container events with the bad image`);
        assert.ok(!events.some((e) => e.Action === 'create'), `${device} created no container at all during the bad release: ${JSON.stringify(events.map((e) => [e.Action, e.Actor.Attributes.image]))}`);
        const now = await serving(device);
        assert.equal(now.id, before1[device]!.id, `${device} still runs the same version-1 container`);
        assert.equal(now.version, '1');
        assert.ok((await agentContainers(device)).every((c) => !refs.includes(c.Image)), `${device} has no container of the bad image`);
        // 2. The agent's own log.
        const log = agentLog(device).slice(stderrBefore[device]);
        assert.ok(!log.includes(BAD_IMAGE), `${device}'s agent log names the bad image:\n${log.slice(-3000)}`);
        assert.ok(!/applying version bad/.test(log), `${device}'s agent applied the bad version`);
        // 3. The server: never told to run it.
        assert.ok(!desiredSeen.get(device)!.has('bad'), `${device} was told to run the bad version: ${[...desiredSeen.get(device)!]}`);
        const detail = await fleet.deviceDetail(device);
        const history = (detail as unknown as { history: { components: { desiredVersion: string }[] }[] }).history;
        assert.ok(history.length > 0);
        assert.ok(history.every((h) => h.components.every((c) => c.desiredVersion !== 'bad')), `${device}'s status history mentions the bad version`);
      }
      // Nobody pulled the bad image from anywhere (it is local; the canary found it without a pull).
      const pulls = await engineEvents({ type: ['image'], event: ['pull'] }, since);
      assert.ok(!JSON.stringify(pulls).includes(`bad-${tag}`), `a pull of the bad image: ${JSON.stringify(pulls)}`);

      // Drift answers "which devices did not update, and why": all four are held by the halted rollout, on version 1.
      const drift = (await fleet.cliJson<DriftEntry[]>(['drift', '-o', 'json'])).filter((e) => names.includes(e.device));
      assert.deepEqual(drift.map((e) => e.device).sort(), [...names].sort(), JSON.stringify(drift));
      for (const e of drift) {
        assert.equal(e.reason, 'held-by-rollout', JSON.stringify(e));
        assert.equal(e.version, '1');
        assert.equal(e.desiredVersion, 'bad');
        assert.match(e.detail, /rolled-back/);
      }
    } finally {
      watching = false;
      await watcher;
    }
  });
});
