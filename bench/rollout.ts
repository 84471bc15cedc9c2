/**
 * bench/rollout: a good release across 10,000 simulated devices with the default waves and no
 * bake time. What the rollout engine itself costs (its ticks, desired-state refresh included, and
 * the apply that starts it) is set against the time the simulated devices spend updating, measured
 * in the same run:
 *   - per device: engine time / devices, against the mean time from a device's release to its
 *     healthy report;
 *   - per wave: engine time / waves, against the mean time from a wave's start to its gate.
 *
 *   node bench/rollout.ts [devices=10000] [sites=500]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../src/server/server.ts';
import { createSimFleet } from '../src/sim/fleet.ts';
import { goodRelease } from '../src/sim/scenarios.ts';
import { adminApi, benchDeployment, waitForDevices } from './support/sim-fleet.ts';

const [DEVICES = 10_000, SITES = 500] = process.argv.slice(2).map(Number);
const POLL_SECONDS = 5;
const say = (text: string) => process.stdout.write(`${text}\n`);

type Detail = {
  state: string;
  waves: { index: number; devices: number }[];
  timeline: { at: string; message: string }[];
  devices: { device: string; releasedAt: string | null; doneAt: string | null; status: string }[];
};

const dir = mkdtempSync(join(tmpdir(), 'driftless-bench-rollout-'));
const server = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0, pollSeconds: POLL_SECONDS, tickMs: 1000, adminToken: 'sim-bench-admin', enrollToken: 'sim-bench-enroll' });
const api = adminApi(server);
const fleet = createSimFleet({
  server: { app: server.app, url: server.url, enrollToken: 'sim-bench-enroll' },
  devices: DEVICES,
  sites: SITES,
  seed: 7,
  pollSeconds: POLL_SECONDS,
  reconcileSeconds: 2,
  behaviour: goodRelease().behaviour,
  timeScale: 0.2,
});
try {
  await fleet.start();
  await api('POST', '/v1/apply', { resources: [benchDeployment('1')] });
  await waitForDevices(api, 'version 1 everywhere', (ds) => ds.length === DEVICES && ds.every((d) => d.components.some((c) => c.version === '1' && c.state === 'healthy')));

  const release = benchDeployment('2');
  delete release.spec.strategy; // the default waves, zero bake
  const ticks0 = { ...server.stats };
  const applyStarted = performance.now();
  const applied = await api<{ results: { revision?: number }[] }>('POST', '/v1/apply', { resources: [release] });
  const applyMs = performance.now() - applyStarted;
  const name = `pos-${applied.results[0]?.revision}`;
  const began = Date.now();
  let detail: Detail;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    detail = await api<Detail>('GET', `/v1/rollouts/${name}`);
    if (detail.state === 'complete') break;
    if (detail.state !== 'progressing') throw new Error(`rollout ${name} is ${detail.state}`);
    if (Date.now() - began > 15 * 60_000) throw new Error(`rollout ${name} not complete after 15 minutes`);
  }
  const engineMs = server.stats.rolloutTickMs - ticks0.rolloutTickMs + applyMs;
  const ticks = server.stats.rolloutTicks - ticks0.rolloutTicks;
  const updates = detail.devices.filter((d) => d.releasedAt && d.doneAt).map((d) => Date.parse(d.doneAt!) - Date.parse(d.releasedAt!));
  const deviceMs = updates.reduce((a, b) => a + b, 0) / Math.max(1, updates.length);
  const waveSpans = detail.waves.map((w) => {
    const started = detail.timeline.find((t) => t.message.startsWith(`wave ${w.index + 1} of`));
    const passed = detail.timeline.find((t) => t.message.startsWith(`wave ${w.index + 1} passed`));
    return started && passed ? Date.parse(passed.at) - Date.parse(started.at) : null;
  }).filter((ms): ms is number => ms !== null);
  const waveMs = waveSpans.reduce((a, b) => a + b, 0) / Math.max(1, waveSpans.length);
  const perDevice = engineMs / DEVICES;
  const perWave = engineMs / detail.waves.length;
  say(`bench/rollout: a good release to ${DEVICES.toLocaleString('en')} simulated devices across ${SITES} sites, default waves, no bake`);
  say(`  rollout took ${((Date.now() - began) / 1000).toFixed(1)} s over ${detail.waves.length} waves; engine: ${ticks} ticks + the apply, ${(engineMs / 1000).toFixed(2)} s in all`);
  say(`  per device: engine ${perDevice.toFixed(2)} ms   vs   device update ${deviceMs.toFixed(0)} ms (release to healthy report)   ratio ${(perDevice / deviceMs).toFixed(4)}`);
  say(`  per wave:   engine ${perWave.toFixed(0)} ms   vs   wave ${waveMs.toFixed(0)} ms (start to health gate)   ratio ${(perWave / waveMs).toFixed(4)}`);
} finally {
  await fleet.stop();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
