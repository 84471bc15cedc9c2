/**
 * bench/bad-release: the July 2024 drill. 10,000 simulated devices across 500 sites run version 1;
 * version 2 crashes shortly after it starts, on every device. It is released twice in the same
 * run: with the default strategy (waves, health gates, automatic halt and rollback) and, for
 * contrast, all at once. For each it prints
 *   - the blast radius: devices that ever ran the bad version / the fleet,
 *   - the time from the first failure the server saw to the halt,
 *   - the time from the first failure until every affected device runs the good version again,
 *   - devices left in an unknown state at the end.
 * Targets: blast radius within the first wave (<= 1% of the fleet), halt within 30 s, everyone
 * recovered within 60 s, none unknown.
 *
 *   node bench/bad-release.ts [devices=10000] [sites=500]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeploymentResource, DeviceView, Strategy } from '../src/protocol/resources.ts';
import { startServer } from '../src/server/server.ts';
import { createSimFleet } from '../src/sim/fleet.ts';
import { badRelease } from '../src/sim/scenarios.ts';
import { adminApi, benchDeployment, waitForDevices } from './support/sim-fleet.ts';

const [DEVICES = 10_000, SITES = 500] = process.argv.slice(2).map(Number);
const POLL_SECONDS = 5;
const TIME_SCALE = 0.2; // fake health checks of 3 s take 0.6 s; the bad version crashes 0.1 s after start
const say = (text: string) => process.stdout.write(`${text}\n`);

type Outcome = { label: string; everRanBad: number; firstFailureToHaltS: number | null; firstFailureToRecoveredS: number; unknown: number; rolloutState: string };

function deployment(version: string, strategy: Strategy | undefined): DeploymentResource {
  const base = benchDeployment(version);
  const spec = { ...base.spec };
  if (strategy) spec.strategy = strategy;
  else delete spec.strategy;
  return { ...base, spec };
}

async function drill(label: string, strategy: Strategy | undefined): Promise<Outcome> {
  const dir = mkdtempSync(join(tmpdir(), 'driftless-bad-release-'));
  const admin = 'sim-bench-admin'; // the token adminApi() speaks with
  const enroll = 'sim-bench-enroll';
  const server = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0, pollSeconds: POLL_SECONDS, tickMs: 1000, adminToken: admin, enrollToken: enroll });
  const api = adminApi(server);
  const fleet = createSimFleet({
    server: { app: server.app, url: server.url, enrollToken: enroll },
    devices: DEVICES,
    sites: SITES,
    seed: 2024,
    pollSeconds: POLL_SECONDS,
    reconcileSeconds: 2,
    behaviour: badRelease('2').behaviour,
    timeScale: TIME_SCALE,
  });
  try {
    await fleet.start();
    await api('POST', '/v1/apply', { resources: [benchDeployment('1')] });
    await waitForDevices(api, 'version 1 everywhere', (ds) => ds.length === DEVICES && ds.every((d) => d.components.some((c) => c.version === '1' && c.state === 'healthy')));

    const applied = await api<{ results: { revision?: number }[] }>('POST', '/v1/apply', { resources: [deployment('2', strategy)] });
    const rolloutName = `pos-${applied.results[0]?.revision}`;
    const released = Date.now();
    const runsGood = (name: string) => fleet.driver(name, 'container').instances().some((i) => i.version === '1' && i.running);
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const rollout = await api<{ state: string; timeline: { at: string; message: string }[] }>('GET', `/v1/rollouts/${rolloutName}`);
      const affected = fleet.devices.filter((d) => fleet.everRan(d.name).has('2'));
      const settled = rollout.state === 'rolled-back' || rollout.state === 'complete';
      if (settled && affected.length > 0 && affected.every((d) => runsGood(d.name))) {
        const recoveredAt = Date.now();
        const firstFailure = rollout.timeline.find((t) => / failed/.test(t.message) && !/threshold/.test(t.message));
        const halted = rollout.timeline.find((t) => t.message.startsWith('threshold crossed'));
        const firstFailureMs = firstFailure ? Date.parse(firstFailure.at) : released;
        const devices = await api<DeviceView[]>('GET', '/v1/devices');
        const unknown = devices.filter((d) => !d.online || d.components.some((c) => c.state === 'unknown' || c.state === 'pending' || c.version !== '1')).length;
        return {
          label,
          everRanBad: affected.length,
          firstFailureToHaltS: halted ? (Date.parse(halted.at) - firstFailureMs) / 1000 : null,
          firstFailureToRecoveredS: (recoveredAt - firstFailureMs) / 1000,
          unknown,
          rolloutState: rollout.state,
        };
      }
      if (Date.now() - released > 10 * 60_000) throw new Error(`${label}: not settled after 10 minutes (rollout ${rollout.state}, ${affected.length} affected)`);
    }
  } finally {
    await fleet.stop();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

say(`bench/bad-release: ${DEVICES.toLocaleString('en')} simulated devices across ${SITES} sites; version 2 crashes after start on every device`);
say(`  (agents poll every ${POLL_SECONDS} s; the server's rollout engine ticks every 1 s; simulated health checks run at ${TIME_SCALE}x time)`);
const waves = await drill('default strategy (waves 1%, 10%, 50%, 100%; halt past 5%; roll back)', undefined);
const allAtOnce = await drill('all at once (one wave, no halt)', { waves: [{ percent: 100 }], maxFailurePercent: 100 });
for (const o of [waves, allAtOnce]) {
  say(`  ${o.label}:`);
  say(`    blast radius:                      ${o.everRanBad} of ${DEVICES} devices ran the bad version (${((100 * o.everRanBad) / DEVICES).toFixed(2)}%)`);
  say(`    first failure -> halt:             ${o.firstFailureToHaltS === null ? 'never halted' : `${o.firstFailureToHaltS.toFixed(1)} s`}`);
  say(`    first failure -> all recovered:    ${o.firstFailureToRecoveredS.toFixed(1)} s   (rollout ${o.rolloutState})`);
  say(`    devices left unknown or not on v1: ${o.unknown}`);
}
say(`  blast radius, waves vs all at once: ${(waves.everRanBad / Math.max(1, allAtOnce.everRanBad)).toFixed(4)} (target: first wave only, <= 1% of the fleet)`);
