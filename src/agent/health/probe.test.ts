import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as http from 'node:http';
import * as net from 'node:net';
import { after, describe, test } from 'node:test';
import { probeOnce, waitForHealth, type ProbeTarget } from './probe.ts';

const servers: (http.Server | net.Server)[] = [];
const children: ChildProcess[] = [];

after(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
});

async function listen<S extends http.Server | net.Server>(server: S): Promise<number> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

async function httpServer(handler: http.RequestListener): Promise<number> {
  return listen(http.createServer(handler));
}

/** A port that refuses connections: bound once, then closed. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Runs commands on the host, as the process driver does for command checks. */
function hostExec(command: string[], signal: AbortSignal): Promise<{ exitCode: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0] ?? 'false', command.slice(1), { signal, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ exitCode: code ?? 1, output }));
  });
}

function localTarget(overrides: Partial<ProbeTarget> = {}): ProbeTarget {
  return {
    address: (port) => ({ host: '127.0.0.1', port }),
    isRunning: async () => ({ running: true, exitCode: null }),
    exec: hostExec,
    ...overrides,
  };
}

/** A target backed by a real child process, so "running" is the truth about a process. */
function processTarget(script: string): ProbeTarget {
  const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  children.push(child);
  return localTarget({
    isRunning: async () => ({ running: child.exitCode === null && child.signalCode === null, exitCode: child.exitCode }),
  });
}

/** A virtual clock whose sleep advances time at once: attempts are counted, nothing waits. */
function virtualTime() {
  let t = 1_000_000;
  return {
    now: () => t,
    sleep: async (ms: number, signal: AbortSignal) => {
      signal.throwIfAborted();
      t += ms;
    },
  };
}

const fast = { timeoutSeconds: 1, intervalSeconds: 0.1 };

describe('waitForHealth', () => {
  test('http check passes when the endpoint answers 2xx', async () => {
    const port = await httpServer((req, res) => {
      res.statusCode = req.url === '/healthz' ? 200 : 404;
      res.end('ok');
    });
    const result = await waitForHealth({ http: { port, path: '/healthz' }, ...fast }, localTarget(), {
      signal: AbortSignal.timeout(5000),
    });
    assert.deepEqual(result, { ok: true, detail: 'GET /healthz answered 200' });
  });

  test('http check passes once the endpoint starts answering', async () => {
    let calls = 0;
    const port = await httpServer((_req, res) => {
      calls += 1;
      res.statusCode = calls < 3 ? 503 : 204;
      res.end();
    });
    const result = await waitForHealth({ http: { port }, timeoutSeconds: 5, intervalSeconds: 0.1 }, localTarget(), {
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(result.ok, true);
    assert.equal(result.detail, 'GET / answered 204');
    assert.equal(calls, 3);
  });

  test('http check honours expectStatus', async () => {
    const port = await httpServer((_req, res) => {
      res.statusCode = 418;
      res.end();
    });
    const result = await waitForHealth({ http: { port, expectStatus: 418 }, ...fast }, localTarget(), {
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(result.ok, true);
  });

  test('http check fails with the status it last saw', async () => {
    const port = await httpServer((_req, res) => {
      res.statusCode = 404;
      res.end('not here');
    });
    const result = await waitForHealth({ http: { port, path: '/healthz' }, ...fast }, localTarget(), {
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(result.ok, false);
    assert.match(result.detail, new RegExp(`^GET http://127\\.0\\.0\\.1:${port}/healthz answered 404 after [0-9.]+s$`));
  });

  test('http check reports a refused connection', async () => {
    const port = await closedPort();
    const result = await waitForHealth({ http: { port, path: '/healthz' }, ...fast }, localTarget(), {
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(result.ok, false);
    assert.match(result.detail, new RegExp(`connection refused on 127\\.0\\.0\\.1:${port}`));
  });

  test('http check uses the published address of the declared port', async () => {
    const port = await httpServer((_req, res) => res.end());
    const target = localTarget({ address: () => ({ host: '127.0.0.1', port }) });
    const result = await waitForHealth({ http: { port: 80 }, ...fast }, target, { signal: AbortSignal.timeout(5000) });
    assert.equal(result.ok, true);
  });

  test('tcp check passes when a listener accepts, fails when refused', async () => {
    const open = await listen(net.createServer((socket) => socket.destroy()));
    const passed = await waitForHealth({ tcp: { port: open }, ...fast }, localTarget(), { signal: AbortSignal.timeout(5000) });
    assert.deepEqual(passed, { ok: true, detail: `connected to 127.0.0.1:${open}` });

    const closed = await closedPort();
    const failed = await waitForHealth({ tcp: { port: closed }, ...fast }, localTarget(), { signal: AbortSignal.timeout(5000) });
    assert.equal(failed.ok, false);
    assert.match(failed.detail, new RegExp(`^connection refused on 127\\.0\\.0\\.1:${closed} after [0-9.]+s$`));
  });

  test('command check passes on exit code 0 and reports the last output line otherwise', async () => {
    const passed = await waitForHealth({ command: ['sh', '-c', 'echo fine'], ...fast }, localTarget(), {
      signal: AbortSignal.timeout(5000),
    });
    assert.deepEqual(passed, { ok: true, detail: 'command "sh -c echo fine" exited 0' });

    const failed = await waitForHealth(
      { command: ['sh', '-c', 'echo starting; echo database not ready >&2; exit 2'], ...fast },
      localTarget(),
      { signal: AbortSignal.timeout(5000) },
    );
    assert.equal(failed.ok, false);
    assert.match(failed.detail, /^command "sh -c .*" exited 2: database not ready after [0-9.]+s$/);
  });

  test('the timeout bounds the retries', async () => {
    const clock = virtualTime();
    let attempts = 0;
    const target = localTarget({
      exec: async () => {
        attempts += 1;
        return { exitCode: 1, output: 'no' };
      },
    });
    const result = await waitForHealth({ command: ['check'], timeoutSeconds: 2, intervalSeconds: 0.5 }, target, {
      signal: AbortSignal.timeout(5000),
      ...clock,
    });
    assert.equal(result.ok, false);
    assert.equal(attempts, 5); // at 0, 0.5, 1, 1.5 and 2 seconds
    assert.equal(result.detail, 'command "check" exited 1: no after 2s');
  });

  test('defaults: 60s timeout, 1s interval', async () => {
    const clock = virtualTime();
    let attempts = 0;
    const target = localTarget({
      exec: async () => {
        attempts += 1;
        return { exitCode: 1, output: '' };
      },
    });
    const result = await waitForHealth({ command: ['check'] }, target, { signal: AbortSignal.timeout(5000), ...clock });
    assert.equal(attempts, 61);
    assert.equal(result.detail, 'command "check" exited 1 after 60s');
  });

  test('fails at once when the instance exits, with its exit code', async () => {
    const target = processTarget('setTimeout(() => process.exit(3), 50)');
    const result = await waitForHealth({ http: { port: await closedPort() }, timeoutSeconds: 30, intervalSeconds: 0.1 }, target, {
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(result.ok, false);
    assert.match(result.detail, /^exited with code 3 after [0-9.]+s$/);
  });

  test('a running check passes after its seconds and fails when the process exits first', async () => {
    const alive = processTarget('setTimeout(() => {}, 5000)');
    const passed = await waitForHealth({ running: { seconds: 0.3 }, intervalSeconds: 0.1 }, alive, {
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(passed.ok, true);
    assert.match(passed.detail, /^running for [0-9.]+s$/);

    const dying = processTarget('setTimeout(() => process.exit(1), 50)');
    const failed = await waitForHealth({ running: { seconds: 30 }, intervalSeconds: 0.1 }, dying, {
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(failed.ok, false);
    assert.match(failed.detail, /^exited with code 1 after [0-9.]+s$/);
  });

  test('no check means running for 3 seconds', async () => {
    const clock = virtualTime();
    let checks = 0;
    const target = localTarget({
      isRunning: async () => {
        checks += 1;
        return { running: true, exitCode: null };
      },
    });
    const result = await waitForHealth(undefined, target, { signal: AbortSignal.timeout(5000), ...clock });
    assert.deepEqual(result, { ok: true, detail: 'running for 3s' });
    assert.equal(checks, 4);
  });

  test('aborts with the signal', async () => {
    const port = await closedPort();
    const controller = new AbortController();
    const reason = new Error('agent stopping');
    setTimeout(() => controller.abort(reason), 100);
    await assert.rejects(
      waitForHealth({ tcp: { port }, timeoutSeconds: 60, intervalSeconds: 0.1 }, localTarget(), { signal: controller.signal }),
      (error) => error === reason,
    );
  });

  test('aborts a hanging command check', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    await assert.rejects(
      waitForHealth({ command: ['sleep', '30'], timeoutSeconds: 60 }, localTarget(), { signal: controller.signal }),
      { name: 'AbortError' },
    );
  });
});

describe('probeOnce', () => {
  test('checks once and reports', async () => {
    const port = await httpServer((_req, res) => {
      res.statusCode = 500;
      res.end();
    });
    const failed = await probeOnce({ http: { port, path: '/healthz' } }, localTarget(), AbortSignal.timeout(5000));
    assert.deepEqual(failed, { ok: false, detail: `GET http://127.0.0.1:${port}/healthz answered 500` });

    const running = await probeOnce(undefined, localTarget(), AbortSignal.timeout(5000));
    assert.deepEqual(running, { ok: true, detail: 'running' });

    const exited = await probeOnce(
      { tcp: { port } },
      localTarget({ isRunning: async () => ({ running: false, exitCode: 137 }) }),
      AbortSignal.timeout(5000),
    );
    assert.deepEqual(exited, { ok: false, detail: 'exited with code 137' });
  });
});
