import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import Docker from 'dockerode';
import { assertPodmanReady, podmanSocketPath, TEST_IMAGE_PORT, TEST_IMAGES } from '../../../../test/support/podman.ts';
import { DriverError } from '../driver.ts';
import type { InstanceSpec, RuntimeDriver } from '../driver.ts';
import type { DesiredComponent } from '../../../protocol/messages.ts';
import { containerName, createContainerDriver, engineConnection, LABELS, parsePorts } from './container-driver.ts';

// Against the real Podman, no mocks: the point is to learn what the engine actually does.
// Every run uses fresh agent ids, so runs (and other suites sharing the engine) never collide.
const agentId = `t-${randomBytes(4).toString('hex')}`;
const otherAgentId = `${agentId}-other`;
const docker = new Docker({ socketPath: podmanSocketPath() });
const volumeName = `driftless-test-${agentId}-data`;
const handMade: string[] = [];

let driver: RuntimeDriver;
let other: RuntimeDriver;
let ready = false;

function spec(deployment: string, component: Partial<DesiredComponent> & { name: string }, hash = 'h1'): InstanceSpec {
  return {
    key: `${deployment}.${component.name}`,
    specHash: hash,
    component: { deployment, revision: 1, version: '1', image: TEST_IMAGES.v1, ...component },
  };
}

async function containersNamed(name: string): Promise<Docker.ContainerInfo[]> {
  const all = await docker.listContainers({ all: true, filters: { name: [name] } });
  return all.filter((c) => c.Names.some((n) => n.replace(/^\//, '') === name));
}

/** httpd starts a moment after the container; poll briefly instead of sleeping a fixed time. */
async function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2000) });
      return { status: res.status, body: await res.text() };
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

async function rejectsWith(promise: Promise<unknown>, reason: DriverError['reason']): Promise<DriverError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof DriverError, `expected a DriverError, got ${String(err)}`);
    assert.equal(err.reason, reason, err.message);
    return err;
  }
  assert.fail(`expected DriverError(${reason})`);
}

describe('container driver against Podman', () => {
  before(async () => {
    await assertPodmanReady();
    driver = createContainerDriver({ agentId, socketPath: podmanSocketPath() });
    other = createContainerDriver({ agentId: otherAgentId, socketPath: podmanSocketPath() });
    ready = true;
  });

  after(async () => {
    if (!ready) return; // setup failed: the before hook already said why, and nothing was created
    for (const id of [agentId, otherAgentId]) {
      const mine = await docker.listContainers({ all: true, filters: { label: [`${LABELS.agent}=${id}`] } });
      for (const c of mine) await docker.getContainer(c.Id).remove({ force: true, v: false });
    }
    for (const name of handMade) await docker.getContainer(name).remove({ force: true }).catch(() => {});
    await docker.getVolume(volumeName).remove().catch(() => {});
    await driver.close();
    await other.close();
  });

  test('create, list and remove round trip with an ephemeral host port', async () => {
    const s = spec('shop', { name: 'web', ports: [String(TEST_IMAGE_PORT)], env: { MODE: 'test' } });
    await driver.create(s);

    const [instance, ...rest] = await driver.list();
    assert.equal(rest.length, 0);
    assert.ok(instance);
    assert.deepEqual(
      { key: instance.key, specHash: instance.specHash, deployment: instance.deployment, component: instance.component, version: instance.version, running: instance.running, exitCode: instance.exitCode },
      { key: 'shop.web', specHash: 'h1', deployment: 'shop', component: 'web', version: '1', running: true, exitCode: null },
    );
    assert.ok(instance.startedAt && !Number.isNaN(Date.parse(instance.startedAt)));
    const hostPort = instance.ports[TEST_IMAGE_PORT];
    assert.ok(hostPort && hostPort > 0, `ephemeral host port reported: ${JSON.stringify(instance.ports)}`);
    assert.deepEqual(await httpGet(hostPort, '/healthz'), { status: 200, body: '1' });

    const inspected = await docker.getContainer(containerName(agentId, 'shop.web')).inspect();
    assert.ok(inspected.Config.Env.includes('MODE=test'));
    assert.equal(inspected.HostConfig.RestartPolicy?.Name || 'no', 'no');

    await driver.remove('shop.web');
    assert.deepEqual(await driver.list(), []);
    assert.deepEqual(await containersNamed(containerName(agentId, 'shop.web')), []);
    await driver.remove('shop.web'); // missing is not an error
  });

  test('the same key and spec hash is a no-op; a new hash replaces the container', async () => {
    const name = containerName(agentId, 'idem.web');
    await driver.create(spec('idem', { name: 'web', ports: ['8080'] }, 'h1'));
    const [first] = await containersNamed(name);
    await driver.create(spec('idem', { name: 'web', ports: ['8080'] }, 'h1'));
    const again = await containersNamed(name);
    assert.equal(again.length, 1);
    assert.equal(again[0]?.Id, first?.Id, 'same spec hash must keep the running container');

    await driver.create(spec('idem', { name: 'web', image: TEST_IMAGES.v2, version: '2', ports: ['8080'] }, 'h2'));
    const replaced = await containersNamed(name);
    assert.equal(replaced.length, 1, 'exactly one container of that name');
    assert.notEqual(replaced[0]?.Id, first?.Id);
    const instance = (await driver.list()).find((i) => i.key === 'idem.web');
    assert.equal(instance?.specHash, 'h2');
    assert.equal(instance?.version, '2');
    assert.deepEqual(await httpGet(instance.ports[8080]!, '/version'), { status: 200, body: '2' });
    await driver.remove('idem.web');
  });

  test('a stopped container is reported with its exit code and start() brings it back', async () => {
    await driver.create(spec('stop', { name: 'web' }));
    await docker.getContainer(containerName(agentId, 'stop.web')).stop({ t: 1 });
    const stopped = (await driver.list()).find((i) => i.key === 'stop.web');
    assert.equal(stopped?.running, false);
    assert.equal(typeof stopped?.exitCode, 'number');
    await driver.start('stop.web');
    assert.equal((await driver.list()).find((i) => i.key === 'stop.web')?.running, true);
    await driver.start('stop.web'); // already running: fine
    await driver.remove('stop.web');
  });

  test('a container that fails to start stays listed as stopped and is replaced by the next create', async () => {
    const broken = spec('broken', { name: 'web', command: ['/no/such/program'] }, 'h1');
    const err = await rejectsWith(driver.create(broken), 'start-failed');
    assert.match(err.message, /no\/such\/program|not found|no such file/i);
    const listed = (await driver.list()).filter((i) => i.key === 'broken.web');
    assert.equal(listed.length, 1);
    assert.equal(listed[0]?.running, false);

    await driver.create(spec('broken', { name: 'web' }, 'h2'));
    const fixed = (await driver.list()).filter((i) => i.key === 'broken.web');
    assert.equal(fixed.length, 1);
    assert.equal(fixed[0]?.running, true);
    assert.equal(fixed[0]?.specHash, 'h2');
    await driver.remove('broken.web');
  });

  test("containers without this agent's label are never listed nor removed", async () => {
    // One made by hand with no labels, one squatting on the exact name the driver would use,
    // and one belonging to another agent on the same engine.
    const plain = `driftless-test-${agentId}-handmade`;
    const squatter = containerName(agentId, 'squat.web');
    handMade.push(plain, squatter);
    for (const name of [plain, squatter]) {
      const c = await docker.createContainer({ name, Image: TEST_IMAGES.v1 });
      await c.start();
    }
    await other.create(spec('shared', { name: 'web' }));
    await driver.create(spec('shared', { name: 'web' }));

    const mine = await driver.list();
    assert.deepEqual(mine.map((i) => i.key), ['shared.web']);
    assert.deepEqual((await other.list()).map((i) => i.key), ['shared.web']);

    await driver.remove('squat.web');
    await rejectsWith(driver.create(spec('squat', { name: 'web' })), 'start-failed');
    await driver.remove('shared.web');

    for (const name of [plain, squatter, containerName(otherAgentId, 'shared.web')]) {
      const [found] = await containersNamed(name);
      assert.equal(found?.State, 'running', `${name} must be untouched`);
    }
    await other.remove('shared.web');
  });

  test('a named volume survives remove()', async () => {
    const s = spec('data', { name: 'db', volumes: [`${volumeName}:/data`] });
    await driver.create(s);
    const signal = AbortSignal.timeout(10_000);
    const write = await driver.exec!('data.db', ['sh', '-c', 'echo kept > /data/file'], signal);
    assert.equal(write.exitCode, 0, write.output);
    await driver.remove('data.db');

    await docker.getVolume(volumeName).inspect(); // throws if the volume went with the container
    await driver.create(s);
    const read = await driver.exec!('data.db', ['cat', '/data/file'], signal);
    assert.deepEqual(read, { exitCode: 0, output: 'kept\n' });
    await driver.remove('data.db');
  });

  test('exec returns combined output and the exit code', async () => {
    await driver.create(spec('exec', { name: 'web' }));
    const signal = AbortSignal.timeout(10_000);
    const result = await driver.exec!('exec.web', ['sh', '-c', 'echo out; echo err >&2; exit 3'], signal);
    assert.equal(result.exitCode, 3);
    assert.match(result.output, /out/);
    assert.match(result.output, /err/);
    assert.deepEqual(await driver.exec!('exec.web', ['cat', '/etc/driftless-test-image'], signal), {
      exitCode: 0,
      output: `${TEST_IMAGES.v1}\n`,
    });
    // An aborted exec returns at once; the engine API cannot kill the process, which ends with
    // the container or by itself.
    const started = Date.now();
    await assert.rejects(driver.exec!('exec.web', ['sleep', '30'], AbortSignal.timeout(300)), { name: 'TimeoutError' });
    assert.ok(Date.now() - started < 5000);
    await driver.remove('exec.web');
  });

  test('the bad image runs but has no /healthz', async () => {
    await driver.create(spec('bad', { name: 'web', image: TEST_IMAGES.bad, version: 'bad', ports: ['8080'] }));
    const instance = (await driver.list()).find((i) => i.key === 'bad.web');
    assert.equal(instance?.running, true);
    assert.equal((await httpGet(instance.ports[8080]!, '/healthz')).status, 404);
    assert.deepEqual(await httpGet(instance.ports[8080]!, '/version'), { status: 200, body: 'bad' });
    await driver.remove('bad.web');
  });

  test('an image that cannot be pulled is download-failed and creates nothing', async () => {
    // localhost/ keeps Podman from searching registries it cannot reach anyway.
    const missing = spec('ghost', { name: 'web', image: `localhost/driftless-no-such-image:${agentId}` });
    const err = await rejectsWith(driver.create(missing), 'download-failed');
    assert.ok(err.message.length > 0);
    assert.deepEqual((await driver.list()).filter((i) => i.key === 'ghost.web'), []);
  });

  test('readLogs returns every line of stdout and stderr exactly once, in pieces and across later output', async () => {
    // 600 lines in well under a second, so most share one timestamp second: the reads below
    // split that second many times. "tail" has no newline (the engine logs a partial line), and
    // the later output, written once /tmp/go exists, follows it in the same stream.
    const script = [
      'for i in $(seq 1 300); do echo "out $i"; echo "err $i" >&2; done',
      "printf tail",
      'while [ ! -e /tmp/go ]; do sleep 0.05; done',
      'echo "later 1"; echo "later 2" >&2',
      'sleep 1000',
    ].join('; ');
    await driver.create(spec('logs', { name: 'web', command: ['sh', '-c', script] }));
    const expected = [...Array.from({ length: 300 }, (_, i) => [`out ${i + 1}`, `err ${i + 1}`]).flat(), 'tail'];

    let cursor: Record<string, unknown> | null = null;
    /** Reads in pieces of at most 50 lines until `want` lines arrived and a read finds nothing more. */
    const readUntil = async (want: number): Promise<string[]> => {
      const got: string[] = [];
      const deadline = Date.now() + 15_000;
      for (;;) {
        const read = await driver.readLogs!('logs.web', cursor, 1 << 20, 50);
        assert.ok(read.lines.length <= 50);
        got.push(...read.lines);
        cursor = read.cursor;
        if (read.lines.length === 0 && got.length >= want) return got;
        assert.ok(Date.now() < deadline, `caught up with ${got.length} of ${want} lines: ${JSON.stringify(got.slice(-5))}`);
        if (read.lines.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };

    const first = await readUntil(expected.length);
    const stream = (lines: string[], prefix: RegExp) => lines.filter((l) => prefix.test(l));
    assert.deepEqual(stream(first, /^(out|tail)/), stream(expected, /^(out|tail)/), 'stdout once each, in order');
    assert.deepEqual(stream(first, /^err/), stream(expected, /^err/), 'stderr once each, in order');
    assert.equal(first.length, expected.length, 'nothing else, nothing twice');

    const go = await driver.exec!('logs.web', ['touch', '/tmp/go'], AbortSignal.timeout(10_000));
    assert.equal(go.exitCode, 0, go.output);
    const later = await readUntil(2);
    assert.deepEqual([...later].sort(), ['later 1', 'later 2'], 'only the new lines');
    assert.deepEqual((await driver.readLogs!('logs.web', cursor, 1 << 20, 50)).lines, []);

    // Another container under the same key starts over: the cursor names the container it read.
    await driver.create(spec('logs', { name: 'web', command: ['sh', '-c', 'echo fresh; sleep 1000'] }, 'h2'));
    const deadline = Date.now() + 10_000;
    let fresh = await driver.readLogs!('logs.web', cursor, 1 << 20, 50);
    while (fresh.lines.length === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      fresh = await driver.readLogs!('logs.web', cursor, 1 << 20, 50);
    }
    assert.deepEqual(fresh.lines, ['fresh']);
    await driver.remove('logs.web');
    assert.deepEqual(await driver.readLogs!('logs.web', fresh.cursor, 1 << 20, 50), { lines: [], cursor: fresh.cursor });
  });

  test('an unreachable engine is runtime-unavailable', async () => {
    const nowhere = createContainerDriver({ agentId, socketPath: '/nonexistent/podman.sock' });
    await rejectsWith(nowhere.list(), 'runtime-unavailable');
    await rejectsWith(nowhere.create(spec('x', { name: 'web' })), 'runtime-unavailable');
    await nowhere.close();
  });
});

describe('container driver pure parts', () => {
  test('parses host:container, container, protocol and host address', () => {
    assert.deepEqual(parsePorts(['8080', '80:8080', '53:53/udp', '127.0.0.1:81:8081/tcp']), [
      { hostIp: '', hostPort: '', containerPort: '8080/tcp' },
      { hostIp: '', hostPort: '80', containerPort: '8080/tcp' },
      { hostIp: '', hostPort: '53', containerPort: '53/udp' },
      { hostIp: '127.0.0.1', hostPort: '81', containerPort: '8081/tcp' },
    ]);
    assert.throws(() => parsePorts(['http']), DriverError);
  });

  test('the engine is DOCKER_HOST when given, else the socket asked for', () => {
    assert.deepEqual(engineConnection({ dockerHost: 'unix:///run/x.sock' }), { socketPath: '/run/x.sock' });
    assert.deepEqual(engineConnection({ dockerHost: 'tcp://10.0.0.2:2375', socketPath: '/ignored' }), {
      host: '10.0.0.2',
      port: 2375,
      protocol: 'http',
    });
    assert.deepEqual(engineConnection({ socketPath: '/run/y.sock' }), { socketPath: '/run/y.sock' });
    assert.throws(() => engineConnection({ dockerHost: 'ssh://box' }), DriverError);
  });

  test('container names are deterministic and engine-safe', () => {
    assert.equal(containerName('a1', 'shop.web'), 'driftless-a1-shop.web');
    assert.match(containerName('a 1', 'shop.web'), /^driftless-a_1-shop\.web-[0-9a-f]{8}$/);
    assert.notEqual(containerName('a 1', 'x'), containerName('a/1', 'x'));
  });
});
