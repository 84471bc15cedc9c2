import assert from 'node:assert/strict';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run, runOk, spawnChild, type Child } from '../support/child.ts';
import { componentOf, createFleet, DRIFTLESS, uniqueTag, type Fleet } from '../support/fleet.ts';
import { assertPodmanReady, TEST_IMAGE_PORT, TEST_IMAGES } from '../support/podman.ts';
import { waitFor, waitUntil } from '../support/wait.ts';

// Promise 6: any device is reachable, even when its workloads are broken. A real server and real
// agents; `driftless terminal` runs on a real PTY inside tmux (typing, output, resize, Ctrl-C,
// exit status); `driftless exec` runs in a Podman container and on the host, and the host still
// answers once that agent's container engine is stopped. The agent's engine is a Podman service
// of its own on a private socket, so stopping it leaves the shared service other tests use alone.

const tag = uniqueTag();
const DEVICE = `term-${tag}`;
const REFUSING = `term-ro-${tag}`;
const DEPLOYMENT = `term-web-${tag}`;
const TMUX = ['-L', `driftless-term-${tag}`];

function manifest(): string {
  return `apiVersion: driftless/v1
kind: Deployment
metadata:
  name: ${DEPLOYMENT}
spec:
  selector:
    matchLabels: { tier: term-${tag} }
  strategy: { waves: [{ percent: 100 }], maxFailurePercent: 100 }
  template:
    version: "1"
    components:
      - name: web
        image: ${TEST_IMAGES.v1}
        ports: ["${TEST_IMAGE_PORT}"]
        health:
          http: { port: ${TEST_IMAGE_PORT}, path: /healthz }
          timeoutSeconds: 8
          intervalSeconds: 0.5
`;
}

function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

const tmux = (...args: string[]) => runOk('tmux', [...TMUX, ...args]);
const screen = () => tmux('capture-pane', '-p', '-J', '-S', '-200', '-t', 'term');

describe('remote terminal and exec', { timeout: 300_000 }, () => {
  let fleet: Fleet;
  let engine: Child | null = null;
  let engineSocket: string;

  before(async () => {
    await assertPodmanReady([TEST_IMAGES.v1]);
    if ((await run('tmux', ['-V'])).code !== 0) throw new Error('tmux is missing: run `bash scripts/setup-system.sh` as root (it installs tmux)');
    fleet = createFleet('terminal');
    fleet.own(DEVICE, REFUSING);
    engineSocket = join(fleet.dir, 'podman.sock');
    engine = spawnChild('podman', ['system', 'service', '--time=0', `unix://${engineSocket}`], { label: 'private podman service' });
    await waitUntil('the private Podman service to answer', () => ping(engineSocket), { timeoutMs: 30_000, context: () => engine!.tail() });
    await fleet.startServer();
    fleet.startAgent({ name: DEVICE, labels: { tier: `term-${tag}` }, wrap: ['env', `DOCKER_HOST=unix://${engineSocket}`] });
    fleet.startAgent({ name: REFUSING, extraArgs: ['--no-remote-shell'] });
    await fleet.waitForDevices('both agents online', (ds) => [DEVICE, REFUSING].every((n) => ds.some((d) => d.name === n && d.online)));
  });

  after(async () => {
    await run('tmux', [...TMUX, 'kill-server']).catch(() => undefined);
    await engine?.stop();
    await fleet?.cleanup();
  });

  const connection = () => ['--server', fleet.url, '--token', fleet.adminToken];
  const exec = (device: string, command: string[], opts: { component?: string; token?: string } = {}) =>
    run(DRIFTLESS, ['exec', device, '--server', fleet.url, '--token', opts.token ?? fleet.adminToken, ...(opts.component ? ['--component', opts.component] : []), '--', ...command], { cwd: fleet.dir, env: fleet.env, timeoutMs: 60_000 });

  test('driftless terminal: a real PTY through tmux — type, read, resize, Ctrl-C, exit status; the session is recorded', async () => {
    // The CLI runs in its own tmux server; after it exits, its status stays on the screen.
    const cli = [DRIFTLESS, 'terminal', DEVICE, ...connection()].map((a) => `'${a}'`).join(' ');
    await tmux('new-session', '-d', '-s', 'term', '-x', '120', '-y', '30', `${cli}; echo CLI-EXIT=$?; sleep 600`);
    const see = (what: string, pattern: RegExp) => waitFor(what, screen, (text) => pattern.test(text), { timeoutMs: 30_000, intervalMs: 200, context: () => fleet.diagnostics() });

    await see('a shell prompt', /[$#] ?$/m);
    await tmux('send-keys', '-t', 'term', 'echo hello-$((6*7))', 'Enter');
    await see('the command output', /^hello-42\s*$/m);

    await tmux('resize-window', '-t', 'term', '-x', '100', '-y', '20');
    await tmux('send-keys', '-t', 'term', 'stty size', 'Enter');
    await see('the new size', /^20 100\s*$/m);

    await tmux('send-keys', '-t', 'term', 'sleep 100', 'Enter');
    await see('sleep running', /sleep 100\s*$/m);
    await tmux('send-keys', '-t', 'term', 'C-c');
    await tmux('send-keys', '-t', 'term', 'echo after-$((1+1))', 'Enter');
    // Well inside the 100 s the sleep would have taken: Ctrl-C reached the remote shell as a byte.
    await waitFor('Ctrl-C to interrupt the sleep', screen, (text) => /^after-2\s*$/m.test(text), { timeoutMs: 20_000, intervalMs: 200 });

    await tmux('send-keys', '-t', 'term', 'exit 7', 'Enter');
    await see('the CLI to exit with the shell status', /^CLI-EXIT=7\s*$/m);

    const recordings = (await fleet.api('/v1/recordings')).body as { id: string; kind: string; device: string }[];
    const recording = recordings.find((r) => r.kind === 'terminal' && r.device === DEVICE);
    assert.ok(recording, `a terminal recording of ${DEVICE}: ${JSON.stringify(recordings)}`);
    const cast = (await fleet.api(`/v1/recordings/${recording.id}`)).text;
    const [header, ...events] = cast.trim().split('\n').map((line) => JSON.parse(line) as unknown);
    assert.equal((header as { version: number }).version, 2);
    const output = events.filter((e) => (e as [number, string, string])[1] === 'o').map((e) => (e as [number, string, string])[2]).join('');
    assert.match(output, /hello-42/);
    assert.ok(events.some((e) => (e as [number, string, string])[1] === 'r' && (e as [number, string, string])[2] === '100x20'), 'the resize is recorded');
  });

  test('driftless exec: in a Podman container and on the host, then on the host with the engine stopped', async () => {
    await fleet.apply('term-web.yaml', manifest());
    await fleet.waitForDevices('the container component healthy', (ds) => componentOf(ds.find((d) => d.name === DEVICE), 'web')?.state === 'healthy', { timeoutMs: 120_000 });

    const inside = await exec(DEVICE, ['sh', '-c', 'echo in-container-$((20+1)); test -d /www && echo has-www; exit 3'], { component: 'web' });
    assert.equal(inside.code, 3, inside.stderr);
    assert.equal(inside.stdout, 'in-container-21\nhas-www\n');

    const host = await exec(DEVICE, ['sh', '-c', 'echo on-host-$((2+3)); exit 4']);
    assert.equal(host.code, 4, host.stderr);
    assert.equal(host.stdout, 'on-host-5\n');

    // Stop this agent's container engine: the device is still reachable on its host.
    await engine!.stop();
    engine = null;
    assert.equal(await ping(engineSocket), false, 'the private engine is down');
    const broken = await exec(DEVICE, ['true'], { component: 'web' });
    assert.notEqual(broken.code, 0);
    assert.match(broken.stderr, /container engine/);
    const still = await exec(DEVICE, ['sh', '-c', 'echo still-here; exit 0']);
    assert.equal(still.code, 0, still.stderr);
    assert.equal(still.stdout, 'still-here\n');

    const recordings = (await fleet.api('/v1/recordings')).body as { kind: string; device: string; command?: string[]; component?: string }[];
    assert.ok(recordings.some((r) => r.kind === 'exec' && r.device === DEVICE && r.component === 'web'), 'exec sessions are recorded');
  });

  test('a viewer token is refused, and so is a device that refuses remote shells', async () => {
    const created = await fleet.cliJson<{ token: string }>(['token', 'create', '--role', 'viewer', '-o', 'json']);
    const viewerExec = await exec(DEVICE, ['id'], { token: created.token });
    assert.equal(viewerExec.code, 1);
    assert.match(viewerExec.stderr, /^driftless: this needs the operator role; the token has viewer\n$/);
    const viewerTerminal = await run(DRIFTLESS, ['terminal', DEVICE, '--server', fleet.url, '--token', created.token], { cwd: fleet.dir, env: fleet.env, timeoutMs: 30_000 });
    assert.equal(viewerTerminal.code, 1);
    assert.match(viewerTerminal.stderr, /operator role/);

    const refusedExec = await exec(REFUSING, ['id']);
    assert.equal(refusedExec.code, 1);
    assert.match(refusedExec.stderr, /refuses remote shells and exec by its local configuration/);
    const refusedTerminal = await run(DRIFTLESS, ['terminal', REFUSING, ...connection()], { cwd: fleet.dir, env: fleet.env, timeoutMs: 30_000 });
    assert.equal(refusedTerminal.code, 1);
    assert.match(refusedTerminal.stderr, /refuses remote shells/);
  });

  test('other-tenant and revoked: another tenant cannot reach the device; a revoked device is refused', async () => {
    const tenant = await fleet.api('/v1/tenants', { method: 'POST', body: JSON.stringify({ name: `org-${tag}` }), headers: { 'content-type': 'application/json' } });
    assert.equal(tenant.status, 201, tenant.text);
    const otherAdmin = (tenant.body as { admin: { token: string } }).admin.token;
    const foreign = await exec(DEVICE, ['id'], { token: otherAdmin });
    assert.equal(foreign.code, 1);
    assert.match(foreign.stderr, /not found/);

    const revoked = await fleet.api(`/v1/devices/${DEVICE}/revoke`, { method: 'POST' });
    assert.equal(revoked.status, 200, revoked.text);
    const refused = await exec(DEVICE, ['id']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /revoked/);
  });
});
