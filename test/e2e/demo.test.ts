import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findProcesses, run } from '../support/child.ts';
import { createFleet, DRIFTLESS, type Fleet } from '../support/fleet.ts';

// `driftless demo --once` runs its whole drill (a good release, then a bad one every device reverts
// on its own) and exits cleanly, leaving no workload behind.

describe('driftless demo --once', { timeout: 240_000 }, () => {
  let fleet: Fleet;

  before(() => {
    // Only for its directory, environment and clean-up: the demo starts its own server and agents.
    fleet = createFleet('demo');
  });

  after(async () => {
    await fleet?.cleanup();
  });

  it('runs the drill, shows the bad release reverted everywhere, and exits 0', async () => {
    const result = await run(DRIFTLESS, ['demo', '--once', '--listen', '127.0.0.1:0', '--data', join(fleet.dir, 'demo')], {
      cwd: fleet.dir,
      env: fleet.env,
      timeoutMs: 180_000,
    });
    const output = `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
    assert.equal(result.code, 0, output);

    // Version 2 went out to all three devices, then version 3 was reverted on each by itself.
    assert.match(result.stdout, /Applied Deployment "pos" version 2/, output);
    assert.match(result.stdout, /Applied version 3, a bad release/, output);
    // The bad release reached one canary, which failed and was rolled back; the rollout halted.
    assert.match(result.stdout, /pos-\d failed: pos: version 3: .+reverted to version 2/, output);
    assert.match(result.stdout, /threshold crossed: 1 of 1 devices in wave 1 failed/, output);
    assert.match(result.stdout, /rollback done: 1 of 1 devices recovered/, output);
    for (const device of ['pos-1', 'pos-2', 'pos-3']) {
      assert.match(result.stdout, new RegExp(`^${device}\\s+store-\\S+\\s+2\\s+2\\s+healthy\\s`, 'm'), `${device} runs 2 after the rollback:\n${output}`);
      assert.match(result.stdout, new RegExp(`^\\s+${device} \\(store-\\S+\\): held-by-rollout: .+rolled-back`, 'm'), `drift explains ${device}:\n${output}`);
    }
    assert.match(result.stdout, /3 of 3 devices drifted: 3 held-by-rollout/, output);
    // At fleet scale on the simulator: a good release completes wave by wave, a bad one stops at its first wave.
    assert.match(result.stdout, /wave 3: 400 devices, 400 updated, 0 failed/, output);
    assert.match(result.stdout, /threshold crossed: \d+ of 10 devices in wave 1 failed/, output);
    const ran = /(\d+) of 500 devices ever ran version 2/.exec(result.stdout);
    assert.ok(ran && Number(ran[1]) <= 10, `the bad kiosk release stayed within its first wave of 10:\n${output}`);

    // It wrote the CLI's config where it was told (never the developer's own), and left nothing running.
    const config = JSON.parse(readFileSync(fleet.env.DRIFTLESS_CONFIG!, 'utf8')) as { server?: string; token?: string };
    assert.match(config.server ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
    // The dashboard link signs in as the demo's admin; the token rides in the fragment, which no request carries.
    assert.ok(result.stdout.includes(`Dashboard: ${config.server}/#token=${encodeURIComponent(config.token ?? '')}`), output);
    assert.ok(existsSync(join(fleet.dir, 'demo', 'server')), 'the demo used the data directory it was given');
    const left = findProcesses(({ cwd }) => cwd !== null && cwd.startsWith(fleet.dir));
    assert.deepEqual(left, [], 'the demo stops its workloads when it exits');
  });
});
