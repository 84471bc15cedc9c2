import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { after, describe, test } from 'node:test';
import type { DesiredComponent } from '../../../protocol/messages.ts';
import { DriverError, type InstanceSpec, type RuntimeDriver } from '../driver.ts';
import {
  backoffAfterCrash,
  createProcessDriver,
  declaredPorts,
  readProcStat,
  type ProcessDriverOptions,
  type ProcessRecord,
} from './process-driver.ts';

const dataDirs: string[] = [];
const drivers: RuntimeDriver[] = [];
const strayPids = new Set<number>();
const strayChildren: ChildProcess[] = [];

after(async () => {
  await Promise.all(drivers.map((driver) => driver.close()));
  // Every workload a test left behind: recorded in an inventory, or started by the test itself.
  for (const dir of dataDirs) {
    for (const record of records(dir)) {
      if (record.pid !== null && isAlive(record.pid, record.startTime)) killGroup(record.pid);
    }
  }
  for (const pid of strayPids) if (isAlive(pid)) killGroup(pid);
  for (const child of strayChildren) child.kill('SIGKILL');
  for (const dir of dataDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function killGroup(pid: number): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
}

/** Alive as the kernel sees it: a zombie is dead. With a start time, only that very process counts. */
function isAlive(pid: number, startTime?: number | null): boolean {
  const stat = readProcStat(pid);
  if (stat === null || stat.state === 'Z' || stat.state === 'X') return false;
  return startTime === undefined || startTime === null || stat.startTime === startTime;
}

function newDataDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'driftless-process-driver-'));
  dataDirs.push(dir);
  return dir;
}

function driverOn(dataDir: string, extra: Partial<ProcessDriverOptions> = {}): RuntimeDriver {
  const driver = createProcessDriver({ agentId: 'agent-1', dataDir, backoff: { initialMs: 100 }, pollIntervalMs: 50, ...extra });
  drivers.push(driver);
  return driver;
}

function records(dataDir: string): ProcessRecord[] {
  const root = path.join(dataDir, 'processes');
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root)
    .filter((key) => fs.existsSync(path.join(root, key, 'instance.json')))
    .map((key) => record(dataDir, key));
}

function record(dataDir: string, key: string): ProcessRecord {
  return JSON.parse(fs.readFileSync(path.join(dataDir, 'processes', key, 'instance.json'), 'utf8')) as ProcessRecord;
}

function pidOf(dataDir: string, key: string): number {
  const pid = record(dataDir, key).pid;
  assert.ok(pid !== null, `${key} has a pid`);
  strayPids.add(pid);
  return pid;
}

function spec(name: string, command: string[], extra: Partial<DesiredComponent> = {}, specHash = 'h1'): InstanceSpec {
  const component: DesiredComponent = { name, deployment: 'app', revision: 1, version: '1.0.0', command, ...extra };
  return { key: `app.${name}`, specHash, component };
}

/** The instance runs again under a pid other than `previous`. */
function restartedFrom(dataDir: string, key: string, previous: number): boolean {
  const { pid, startTime } = record(dataDir, key);
  if (pid === null || pid === previous) return false;
  strayPids.add(pid);
  return isAlive(pid, startTime);
}

const sleeper = (name: string, hash = 'h1') => spec(name, ['sleep', '30'], {}, hash);

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  for (let waited = 0; waited < timeoutMs; waited += 20) {
    if (await condition()) return;
    await delay(20);
  }
  assert.fail(`timed out waiting for ${what}`);
}

async function freePort(): Promise<number> {
  const net = await import('node:net');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as import('node:net').AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('process driver', () => {
  test('creates, lists and removes a supervised process', async () => {
    const dataDir = newDataDir();
    const driver = driverOn(dataDir);
    const port = await freePort();
    const server = `require('node:http').createServer((q, s) => s.end(process.env.GREETING)).listen(${port}, '127.0.0.1', () => console.log('listening'))`;
    await driver.create(
      spec('web', [process.execPath, '-e', server], { env: { GREETING: 'hello' }, ports: [`${port}`, '9000:8080/tcp'] }),
    );

    const [instance, ...others] = await driver.list();
    assert.equal(others.length, 0);
    assert.ok(instance);
    assert.deepEqual(
      { ...instance, startedAt: typeof instance.startedAt },
      {
        key: 'app.web',
        specHash: 'h1',
        deployment: 'app',
        component: 'web',
        version: '1.0.0',
        running: true,
        exitCode: null,
        startedAt: 'string',
        ports: { [port]: port, 8080: 9000 },
        restarts: 0,
      },
    );
    const pid = pidOf(dataDir, 'app.web');
    assert.ok(isAlive(pid));
    let body = '';
    await waitFor('the server to answer', async () => {
      body = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text(), () => '');
      return body !== '';
    });
    assert.equal(body, 'hello');
    const stored = record(dataDir, 'app.web');
    assert.equal(stored.startTime, readProcStat(pid)?.startTime);
    assert.equal(stored.restarts, 0);
    assert.match(fs.readFileSync(path.join(dataDir, 'processes', 'app.web', 'output.log'), 'utf8'), /listening/);

    await driver.remove('app.web');
    assert.equal(isAlive(pid), false);
    assert.deepEqual(await driver.list(), []);
    assert.equal(fs.existsSync(path.join(dataDir, 'processes', 'app.web')), false);
    await driver.remove('app.web'); // a missing instance is not an error
  });

  test('create is idempotent for the same hash and replaces the process for a new one', async () => {
    const dataDir = newDataDir();
    const driver = driverOn(dataDir);
    await driver.create(sleeper('a'));
    const first = pidOf(dataDir, 'app.a');
    await driver.create(sleeper('a'));
    assert.equal(pidOf(dataDir, 'app.a'), first);

    await driver.create(sleeper('a', 'h2'));
    const second = pidOf(dataDir, 'app.a');
    assert.notEqual(second, first);
    assert.equal(isAlive(first), false);
    assert.ok(isAlive(second));
    assert.deepEqual((await driver.list()).map((i) => [i.specHash, i.running]), [['h2', true]]);
    await driver.remove('app.a');
  });

  test('restarts a crashed process with back-off and counts the restarts', async () => {
    const dataDir = newDataDir();
    const messages: string[] = [];
    const driver = driverOn(dataDir, { log: (m) => messages.push(m) });
    await driver.create(sleeper('crashy'));
    const first = pidOf(dataDir, 'app.crashy');

    process.kill(first, 'SIGKILL');
    await waitFor('a restart', () => restartedFrom(dataDir, 'app.crashy', first));
    const second = pidOf(dataDir, 'app.crashy');
    assert.equal(record(dataDir, 'app.crashy').restarts, 1);
    assert.ok(messages.some((m) => m.includes('exited with code 137; restarting in 100ms')), messages.join('\n'));

    process.kill(second, 'SIGKILL');
    await waitFor('a second restart', () => restartedFrom(dataDir, 'app.crashy', second));
    assert.equal(record(dataDir, 'app.crashy').restarts, 2);
    // It crashed again at once, so the delay doubled.
    assert.ok(messages.some((m) => m.includes('restarting in 200ms')), messages.join('\n'));
    const [instance] = await driver.list();
    assert.equal(instance?.running, true);
    await driver.remove('app.crashy');
  });

  test('a crash ends what the process left behind in its group before the restart', async () => {
    const dataDir = newDataDir();
    const driver = driverOn(dataDir);
    const childFile = path.join(dataDir, 'background.pid');
    await driver.create(spec('leaky', ['sh', '-c', `sleep 30 & echo $! > ${childFile}; exec sleep 30`]));
    const leader = pidOf(dataDir, 'app.leaky');
    await waitFor('the background child', () => fs.existsSync(childFile) && fs.readFileSync(childFile, 'utf8').trim() !== '');
    const background = Number(fs.readFileSync(childFile, 'utf8'));
    strayPids.add(background);
    fs.rmSync(childFile);

    process.kill(leader, 'SIGKILL');
    await waitFor('the background child to end', () => !isAlive(background));
    await waitFor('a restart', () => restartedFrom(dataDir, 'app.leaky', leader));
    await driver.remove('app.leaky');
  });

  test('a second driver on the same data dir adopts running processes and can remove them', async () => {
    const dataDir = newDataDir();
    const first = driverOn(dataDir);
    await first.create(sleeper('kept'));
    const pid = pidOf(dataDir, 'app.kept');
    const [before] = await first.list();
    await first.close();
    assert.ok(isAlive(pid), 'closing the driver leaves the workload running');

    const second = driverOn(dataDir);
    const [adopted] = await second.list();
    assert.deepEqual(adopted, before);
    await second.create(sleeper('kept')); // same hash, still running: nothing to do
    assert.equal(pidOf(dataDir, 'app.kept'), pid);

    await second.remove('app.kept');
    assert.equal(isAlive(pid), false);
    assert.deepEqual(await second.list(), []);
  });

  test('workloads survive the agent being killed with SIGKILL, and the next agent restarts one that crashed', async () => {
    const dataDir = newDataDir();
    const driverUrl = pathToFileURL(path.join(import.meta.dirname, 'process-driver.ts')).href;
    const agentScript = `
      const { createProcessDriver } = await import(${JSON.stringify(driverUrl)});
      const driver = createProcessDriver({ agentId: 'agent-1', dataDir: ${JSON.stringify(dataDir)} });
      await driver.create({ key: 'app.survivor', specHash: 'h1',
        component: { name: 'survivor', deployment: 'app', revision: 1, version: '1.0.0', command: ['sleep', '30'] } });
      console.log('created');
      setInterval(() => {}, 1000);`;
    const agent = spawn(process.execPath, ['--input-type=module', '-e', agentScript], { stdio: ['ignore', 'pipe', 'inherit'] });
    strayChildren.push(agent);
    await new Promise<void>((resolve, reject) => {
      agent.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('created') && resolve());
      agent.once('exit', (code) => reject(new Error(`agent exited with ${code}`)));
    });
    const pid = pidOf(dataDir, 'app.survivor');
    agent.kill('SIGKILL');
    await new Promise((resolve) => agent.once('exit', resolve));
    assert.ok(isAlive(pid), 'the workload outlives its agent');

    const driver = driverOn(dataDir);
    const [adopted] = await driver.list();
    assert.equal(adopted?.running, true);

    // Not our child, so only polling sees it die; the driver restarts it all the same.
    process.kill(pid, 'SIGKILL');
    await waitFor('a restart of the adopted process', () => restartedFrom(dataDir, 'app.survivor', pid));
    assert.equal(record(dataDir, 'app.survivor').restarts, 1);
    await driver.remove('app.survivor');
  });

  test('a recorded pid whose start time does not match is not ours: reported stopped, never signalled', async () => {
    const dataDir = newDataDir();
    const first = driverOn(dataDir);
    await first.create(sleeper('recycled'));
    const original = pidOf(dataDir, 'app.recycled');
    await first.close();
    killGroup(original); // the workload died while no agent ran...

    // ...and its pid went to some other program: simulate by pointing the record at a foreign process.
    const foreign = spawn('sleep', ['30'], { stdio: 'ignore' });
    strayChildren.push(foreign);
    assert.ok(foreign.pid !== undefined);
    const file = path.join(dataDir, 'processes', 'app.recycled', 'instance.json');
    const edited = { ...record(dataDir, 'app.recycled'), pid: foreign.pid, startTime: (readProcStat(foreign.pid)?.startTime ?? 0) + 1 };
    fs.writeFileSync(file, JSON.stringify(edited));

    const second = driverOn(dataDir, { backoff: { initialMs: 60_000 } });
    const [instance] = await second.list();
    assert.equal(instance?.running, false);
    await second.remove('app.recycled');
    assert.ok(isAlive(foreign.pid), 'the foreign process was not touched');
    assert.equal(foreign.signalCode, null);
    assert.deepEqual(await second.list(), []);
  });

  test('lists only its inventory, never other processes', async () => {
    const dataDir = newDataDir();
    const unrelated = spawn('sleep', ['30'], { stdio: 'ignore', detached: true, env: { PATH: process.env.PATH ?? '' } });
    strayChildren.push(unrelated);
    const driver = driverOn(dataDir);
    assert.deepEqual(await driver.list(), []);
    await driver.create(sleeper('mine'));
    assert.deepEqual((await driver.list()).map((i) => i.key), ['app.mine']);
    await driver.remove('app.mine');
    assert.ok(unrelated.pid !== undefined && isAlive(unrelated.pid));
  });

  test('a missing executable is a start failure', async () => {
    const dataDir = newDataDir();
    const driver = driverOn(dataDir);
    await assert.rejects(driver.create(spec('missing', ['/nonexistent/bin/server', '--port', '80'])), (error) => {
      assert.ok(error instanceof DriverError);
      assert.equal(error.reason, 'start-failed');
      assert.match(error.message, /\/nonexistent\/bin\/server: no such file or directory/);
      return true;
    });
    const [instance] = await driver.list();
    assert.equal(instance?.running, false);
    await delay(300);
    assert.equal(record(dataDir, 'app.missing').restarts, 0, 'a command that cannot run is not retried in a loop');
    await driver.remove('app.missing');
    assert.deepEqual(await driver.list(), []);
  });

  test('a command that exits at once is a start failure with its exit code and last output', async () => {
    const dataDir = newDataDir();
    const driver = driverOn(dataDir);
    await assert.rejects(
      driver.create(spec('quick', ['sh', '-c', 'echo starting; echo config file missing >&2; exit 3'])),
      (error) => {
        assert.ok(error instanceof DriverError);
        assert.equal(error.reason, 'start-failed');
        assert.match(error.message, /exited with code 3/);
        assert.match(error.message, /starting\nconfig file missing$/);
        return true;
      },
    );
    const [instance] = await driver.list();
    assert.deepEqual([instance?.running, instance?.exitCode], [false, 3]);
  });

  test('a running process\'s output file stays bounded while it is read, and every line is read once, in order', async () => {
    const dataDir = newDataDir();
    const driver = driverOn(dataDir, { maxOutputBytes: 4096 });
    const flag = path.join(dataDir, 'more');
    // Two bursts of ~9 KiB each; the second waits for the test, so the first was read (and the file emptied) before it.
    await driver.create(spec('chatty', ['sh', '-c', `seq 1 2000; while [ ! -f ${flag} ]; do sleep 0.05; done; seq 2001 4000; exec sleep 30`]));
    const file = path.join(dataDir, 'processes', 'app.chatty', 'output.log');
    const numbers: number[] = [];
    let cursor: Record<string, unknown> | null = null;
    const drain = async () => {
      for (;;) {
        const read = await driver.readLogs!('app.chatty', cursor, 1024);
        cursor = read.cursor;
        if (read.lines.length === 0) return;
        numbers.push(...read.lines.filter((l) => /^\d+$/.test(l)).map(Number));
      }
    };
    await waitFor('the first burst read', async () => (await drain(), numbers.length === 2000));
    assert.equal(fs.statSync(file).size, 0, 'read to its end and past 4 KiB: emptied');
    fs.writeFileSync(flag, '');
    await waitFor('the second burst read', async () => (await drain(), numbers.length >= 4000));
    assert.deepEqual(numbers, Array.from({ length: 4000 }, (_, i) => i + 1));
    assert.equal(fs.statSync(file).size, 0);
    await driver.remove('app.chatty');
  });

  test('start runs a stopped instance again', async () => {
    const dataDir = newDataDir();
    const driver = driverOn(dataDir);
    const flag = path.join(dataDir, 'ready');
    await assert.rejects(driver.create(spec('late', ['sh', '-c', `test -f ${flag} || exit 4; exec sleep 30`])), DriverError);
    fs.writeFileSync(flag, '');
    await driver.start('app.late');
    const [instance] = await driver.list();
    assert.equal(instance?.running, true);
    assert.ok(isAlive(pidOf(dataDir, 'app.late')));
    await assert.rejects(driver.start('app.unknown'), DriverError);
    await driver.remove('app.late');
  });

  test('remove ends the whole process group, children of the process too', async () => {
    const dataDir = newDataDir();
    const driver = driverOn(dataDir);
    const childFile = path.join(dataDir, 'grandchild.pid');
    const script = `const c = require('node:child_process').spawn('sleep', ['30'], { stdio: 'ignore' });
      require('node:fs').writeFileSync(${JSON.stringify(childFile)}, String(c.pid)); setInterval(() => {}, 1000);`;
    await driver.create(spec('parent', [process.execPath, '-e', script]));
    await waitFor('the grandchild', () => fs.existsSync(childFile));
    const grandchild = Number(fs.readFileSync(childFile, 'utf8'));
    strayPids.add(grandchild);
    assert.ok(isAlive(grandchild));
    await driver.remove('app.parent');
    await waitFor('the grandchild to end', () => !isAlive(grandchild));
  });

  test('exec runs beside the process with its environment and working directory', async () => {
    const dataDir = newDataDir();
    const driver = driverOn(dataDir);
    const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'driftless-workdir-'));
    dataDirs.push(workDir);
    await driver.create(spec('env', ['sleep', '30'], { env: { GREETING: 'hi' }, workingDir: workDir }));
    const result = await driver.exec?.('app.env', ['sh', '-c', 'echo "$GREETING from $(pwd)"; exit 5'], AbortSignal.timeout(5000));
    assert.deepEqual(result, { exitCode: 5, output: `hi from ${fs.realpathSync(workDir)}\n` });
    const missing = await driver.exec?.('app.env', ['/nonexistent/check'], AbortSignal.timeout(5000));
    assert.equal(missing?.exitCode, 127);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(driver.exec?.('app.env', ['sleep', '30'], controller.signal) ?? Promise.resolve(), { name: 'AbortError' });
    await driver.remove('app.env');
  });
});

describe('restart back-off', () => {
  test('doubles from 1s to a 30s cap and starts over after a run of 60s', () => {
    const delays: number[] = [];
    let streak = 0;
    for (let i = 0; i < 8; i += 1) {
      const next = backoffAfterCrash({ streak, ranMs: 500 });
      delays.push(next.delayMs);
      streak = next.streak;
    }
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    assert.deepEqual(backoffAfterCrash({ streak, ranMs: 60_000 }), { delayMs: 1000, streak: 1 });
  });
});

describe('declaredPorts', () => {
  test('maps container port to host port as written', () => {
    assert.deepEqual(declaredPorts(['8080:8080', '9000:80/udp', '5000']), { 8080: 8080, 80: 9000, 5000: 5000 });
    assert.deepEqual(declaredPorts(undefined), {});
  });
});
