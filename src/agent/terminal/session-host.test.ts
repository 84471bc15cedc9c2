import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fromBase64, toBase64, type AgentToServer } from '../../protocol/channel.ts';
import { exitStatusOf, loginShell, runOnHost } from './host-exec.ts';
import type { Terminal } from './pty-terminal.ts';
import { createSessionHost, REFUSAL_MESSAGE, SessionRefusal, type SessionHostDeps } from './session-host.ts';

const S1 = 'aaaaaaaa-0000-4000-8000-000000000001';
const S2 = 'aaaaaaaa-0000-4000-8000-000000000002';

/** A terminal that echoes what is typed, in upper case, and exits on "exit N". */
function fakeTerminal(log: string[]): Terminal & { emitExit(code: number): void } {
  let onData: (data: Buffer) => void = () => undefined;
  let onExit: (code: number) => void = () => undefined;
  return {
    write(data) {
      log.push(`write ${data.toString()}`);
      const exit = /^exit (\d+)/.exec(data.toString());
      if (exit) onExit(Number(exit[1]));
      else onData(Buffer.from(data.toString().toUpperCase()));
    },
    resize: (cols, rows) => log.push(`resize ${cols}x${rows}`),
    kill: () => log.push('kill'),
    pause: () => log.push('pause'),
    resume: () => log.push('resume'),
    onData: (listener) => (onData = listener),
    onExit: (listener) => (onExit = listener),
    emitExit: (code) => onExit(code),
  };
}

function harness(overrides: Partial<SessionHostDeps> = {}) {
  const sent: AgentToServer[] = [];
  const log: string[] = [];
  const terminals: ReturnType<typeof fakeTerminal>[] = [];
  const host = createSessionHost({
    send: (frame) => sent.push(frame),
    remoteShell: () => true,
    spawnTerminal: async (size) => {
      log.push(`spawn ${size.cols}x${size.rows}`);
      const terminal = fakeTerminal(log);
      terminals.push(terminal);
      return terminal;
    },
    runOnHost,
    execInComponent: async () => {
      throw new SessionRefusal('not-found', 'no component "web" runs on this device');
    },
    ...overrides,
  });
  const output = (session: string) =>
    sent
      .filter((f): f is Extract<AgentToServer, { type: 'output' }> => f.type === 'output' && f.session === session)
      .map((f) => fromBase64(f.data).toString())
      .join('');
  const until = async (what: string, check: () => boolean) => {
    for (let i = 0; i < 400 && !check(); i++) await sleep(10);
    assert.ok(check(), `timed out waiting for ${what}; sent: ${JSON.stringify(sent)}`);
  };
  return { host, sent, log, terminals, output, until };
}

describe('session host: terminals', () => {
  test('opens a shell at the asked size, relays input and output, resizes, and reports the exit', async () => {
    const h = harness();
    h.host.handle({ type: 'open-terminal', session: S1, cols: 120, rows: 30 });
    // Typed before the shell was up: kept and delivered once it runs.
    h.host.handle({ type: 'input', session: S1, data: toBase64('early') });
    await h.until('opened', () => h.sent.some((f) => f.type === 'opened'));
    h.host.handle({ type: 'input', session: S1, data: toBase64('hello') });
    h.host.handle({ type: 'resize', session: S1, cols: 100, rows: 20 });
    assert.equal(h.output(S1), 'EARLYHELLO');
    h.host.handle({ type: 'input', session: S1, data: toBase64('exit 3') });
    assert.deepEqual(h.sent.at(-1), { type: 'exit', session: S1, exitCode: 3 });
    assert.deepEqual(h.log, ['spawn 120x30', 'write early', 'write hello', 'resize 100x20', 'write exit 3']);
    assert.equal(h.host.count(), 0);
  });

  test('close hangs up the shell, and nothing more is sent for it', async () => {
    const h = harness();
    h.host.handle({ type: 'open-terminal', session: S1, cols: 80, rows: 24 });
    await h.until('opened', () => h.sent.some((f) => f.type === 'opened'));
    h.host.handle({ type: 'close', session: S1 });
    assert.ok(h.log.includes('kill'));
    const before = h.sent.length;
    h.terminals[0]!.emitExit(129);
    assert.equal(h.sent.length, before);
  });

  test('refuses every session when remote shells are switched off locally, with a message that says how', () => {
    const h = harness({ remoteShell: () => false });
    h.host.handle({ type: 'open-terminal', session: S1, cols: 80, rows: 24 });
    h.host.handle({ type: 'open-exec', session: S2, command: ['id'], timeoutSeconds: 5 });
    assert.deepEqual(h.sent, [
      { type: 'error', session: S1, code: 'refused', message: REFUSAL_MESSAGE },
      { type: 'error', session: S2, code: 'refused', message: REFUSAL_MESSAGE },
    ]);
    assert.match(REFUSAL_MESSAGE, /--no-remote-shell/);
    assert.deepEqual(h.log, []);
  });

  test('a device at its session limit answers busy', async () => {
    const h = harness({ maxSessions: 1 });
    h.host.handle({ type: 'open-terminal', session: S1, cols: 80, rows: 24 });
    h.host.handle({ type: 'open-terminal', session: S2, cols: 80, rows: 24 });
    assert.deepEqual(h.sent.find((f) => f.type === 'error'), { type: 'error', session: S2, code: 'busy', message: 'this device already runs 1 remote sessions, its limit' });
  });

  test('a shell that cannot start is an error, not a hang', async () => {
    const h = harness({ spawnTerminal: async () => Promise.reject(new Error('no pty devices')) });
    h.host.handle({ type: 'open-terminal', session: S1, cols: 80, rows: 24 });
    await h.until('error', () => h.sent.length > 0);
    assert.deepEqual(h.sent, [{ type: 'error', session: S1, code: 'failed', message: 'cannot start a shell: no pty devices' }]);
  });
});

describe('session host: exec', () => {
  test('runs a command on the host: its output and exit code', async () => {
    const h = harness();
    h.host.handle({ type: 'open-exec', session: S1, command: ['sh', '-c', 'echo out; echo err >&2; exit 7'], timeoutSeconds: 10 });
    await h.until('exit', () => h.sent.some((f) => f.type === 'exit'));
    assert.equal(h.output(S1).split('\n').sort().join(' ').trim(), 'err out');
    assert.deepEqual(h.sent.at(-1), { type: 'exit', session: S1, exitCode: 7 });
  });

  test('a command past its deadline is killed with its children and exits 124', async () => {
    const h = harness();
    h.host.handle({ type: 'open-exec', session: S1, command: ['sh', '-c', 'echo started; sleep 30 & wait'], timeoutSeconds: 1 });
    await h.until('exit', () => h.sent.some((f) => f.type === 'exit'));
    assert.deepEqual(h.sent.at(-1), { type: 'exit', session: S1, exitCode: 124, timedOut: true });
    assert.equal(h.output(S1), 'started\n');
  });

  test('an unknown command exits 127 as a shell would say it', async () => {
    const h = harness();
    h.host.handle({ type: 'open-exec', session: S1, command: ['no-such-command-here'], timeoutSeconds: 5 });
    await h.until('exit', () => h.sent.some((f) => f.type === 'exit'));
    assert.equal(h.output(S1), 'no-such-command-here: command not found\n');
    assert.deepEqual(h.sent.at(-1), { type: 'exit', session: S1, exitCode: 127 });
  });

  test('close kills a running command', async () => {
    const h = harness();
    h.host.handle({ type: 'open-exec', session: S1, command: ['sleep', '30'], timeoutSeconds: 60 });
    await h.until('opened', () => h.sent.some((f) => f.type === 'opened'));
    h.host.handle({ type: 'close', session: S1 });
    await h.until('gone', () => h.host.count() === 0);
    assert.ok(!h.sent.some((f) => f.type === 'exit'), 'a closed session sends nothing more');
  });

  test("in a component: the driver's answer, or its refusal", async () => {
    const h = harness({ execInComponent: async (component, command) => ({ exitCode: 2, output: `${component}: ${command.join(' ')}\n` }) });
    h.host.handle({ type: 'open-exec', session: S1, command: ['cat', '/etc/hostname'], component: 'web', timeoutSeconds: 5 });
    await h.until('exit', () => h.sent.some((f) => f.type === 'exit'));
    assert.equal(h.output(S1), 'web: cat /etc/hostname\n');
    assert.deepEqual(h.sent.at(-1), { type: 'exit', session: S1, exitCode: 2 });

    const missing = harness();
    missing.host.handle({ type: 'open-exec', session: S2, command: ['ls'], component: 'web', timeoutSeconds: 5 });
    await missing.until('error', () => missing.sent.some((f) => f.type === 'error'));
    assert.deepEqual(missing.sent.at(-1), { type: 'error', session: S2, code: 'not-found', message: 'no component "web" runs on this device' });
  });
});

describe('host exec helpers', () => {
  test('exit status of a signal is 128 + its number; the login shell is bash when present', () => {
    assert.equal(exitStatusOf(0, null), 0);
    assert.equal(exitStatusOf(null, 'SIGKILL'), 137);
    assert.equal(exitStatusOf(null, 'SIGINT'), 130);
    assert.equal(loginShell(() => true), '/bin/bash');
    assert.equal(loginShell(() => false), '/bin/sh');
  });
});
