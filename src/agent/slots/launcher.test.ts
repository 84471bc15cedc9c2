import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { sha256Hex } from '../../protocol/canonical.ts';
import { createFileSlotBackend, openSlotsState, readSlotsState } from './file-backend.ts';
import { createLauncher, type Launcher } from './launcher.ts';

/**
 * The launcher with real child processes: small agent stand-ins that record each boot, crash,
 * hang or say healthy, and a factory agent that asks once for a switch to the release in slot a.
 */
const record = (dir: string) => `import { appendFileSync } from 'node:fs';
appendFileSync(${JSON.stringify(join(dir, 'boots.log'))}, process.env.DRIFTLESS_SLOT + ' ' + process.env.DRIFTLESS_AGENT_VERSION + '\\n');
const stayUp = () => { const t = setInterval(() => {}, 1000); process.on('SIGTERM', () => { clearInterval(t); process.disconnect?.(); }); };
`;
const releases = {
  crash: (dir: string) => `${record(dir)}process.exit(1);\n`,
  hang: (dir: string) => `${record(dir)}stayUp();\n`,
  good: (dir: string) => `${record(dir)}stayUp(); setTimeout(() => process.connected && process.send({ type: 'healthy' }), 100);\n`,
};
/** The factory agent: installs nothing itself (the test did), but asks for the switch unless a trial already failed. */
const factory = (dir: string, release: { version: string; sha256: string }) => `${record(dir)}stayUp();
import { readFileSync } from 'node:fs';
let state = null;
try { state = JSON.parse(readFileSync(process.env.DRIFTLESS_SLOTS + '/state.json', 'utf8')); } catch {}
if (!state?.lastFailure && state?.committed !== 'a') setTimeout(() => process.connected && process.send({ type: 'switch', slot: 'a', ...${JSON.stringify(release)} }), 100);
`;

async function waitFor(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('launcher', { timeout: 60_000 }, () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  function setup(kind: keyof typeof releases, trialMs = 20_000) {
    const dir = mkdtempSync(join(tmpdir(), 'driftless-launcher-'));
    dirs.push(dir);
    const slotsDir = join(dir, 'slots');
    const backend = createFileSlotBackend(slotsDir, { nodeArgs: [] });
    const bytes = Buffer.from(releases[kind](dir));
    backend.install('a', bytes);
    const release = { version: `2.0.0-${kind}`, sha256: sha256Hex(bytes) };
    writeFileSync(join(dir, 'factory.mjs'), factory(dir, release));
    const lines: string[] = [];
    const start = (): { launcher: Launcher; done: Promise<void> } => {
      const launcher = createLauncher({
        state: openSlotsState(slotsDir),
        backend,
        slotsDir,
        factory: { command: process.execPath, args: [join(dir, 'factory.mjs')], version: '1.0.0' },
        agentArgs: ['--name', 'x'],
        maxAttempts: 2,
        trialMs,
        restartDelayMs: 50,
        stopGraceMs: 2000,
        log: (line) => lines.push(line),
      });
      return { launcher, done: launcher.run() };
    };
    const boots = () => (existsSync(join(dir, 'boots.log')) ? readFileSync(join(dir, 'boots.log'), 'utf8').trim().split('\n') : []);
    return { slotsDir, start, boots, lines };
  }

  test('a release that crashes on start is abandoned after its boot attempts, and the factory agent boots again', async () => {
    const { slotsDir, start, boots, lines } = setup('crash');
    const { launcher, done } = start();
    await waitFor('the return to the factory agent', () => boots().length >= 4);
    await launcher.stop();
    await done;
    assert.deepEqual(boots().slice(0, 4), ['factory 1.0.0', 'a 2.0.0-crash', 'a 2.0.0-crash', 'factory 1.0.0'], lines.join('\n'));
    const state = readSlotsState(slotsDir);
    assert.equal(state.active, null);
    assert.equal(state.trial, null);
    assert.equal(state.lastFailure?.version, '2.0.0-crash');
    assert.equal(state.lastFailure?.reason, 'failed to start 2 times: exit code 1');
  });

  test('a release that never says healthy is stopped at its deadline and abandoned', async () => {
    const { slotsDir, start, boots, lines } = setup('hang', 1500);
    const { launcher, done } = start();
    await waitFor('the return to the factory agent', () => boots().length >= 3);
    await launcher.stop();
    await done;
    assert.deepEqual(boots().slice(0, 3), ['factory 1.0.0', 'a 2.0.0-hang', 'factory 1.0.0'], lines.join('\n'));
    assert.match(readSlotsState(slotsDir).lastFailure?.reason ?? '', /did not report healthy within its deadline \(last boot: exit code 0 after missing its deadline\)/);
  });

  test('a good release is committed and boots again after the launcher restarts', async () => {
    const { slotsDir, start, boots, lines } = setup('good');
    const first = start();
    await waitFor('the commit', () => readSlotsState(slotsDir).committed === 'a');
    await first.launcher.stop();
    await first.done;
    const second = start();
    await waitFor('the second boot of slot a', () => boots().length >= 3);
    await second.launcher.stop();
    await second.done;
    assert.deepEqual(boots(), ['factory 1.0.0', 'a 2.0.0-good', 'a 2.0.0-good'], lines.join('\n'));
    const state = readSlotsState(slotsDir);
    assert.deepEqual({ active: state.active, committed: state.committed, trial: state.trial, failure: state.lastFailure }, { active: 'a', committed: 'a', trial: null, failure: null });
  });

  test('a switch to a slot whose bytes do not match is refused', async () => {
    const { slotsDir, start, boots, lines } = setup('good');
    createFileSlotBackend(slotsDir).install('a', Buffer.from('tampered'));
    const { launcher, done } = start();
    await waitFor('the refusal', () => lines.some((l) => l.includes('refused to switch')));
    await launcher.stop();
    await done;
    assert.deepEqual(boots(), ['factory 1.0.0']);
    assert.equal(readSlotsState(slotsDir).trial, null);
  });
});
