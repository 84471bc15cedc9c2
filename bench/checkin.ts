/**
 * bench/checkin: requests per second of an agent's unchanged-state poll (the conditional GET of
 * its desired state, answered 304) on a real server process with 1,000 enrolled devices, next to
 * a bare Node HTTP server answering 304, measured in the same run on the same machine.
 *
 * The figure that matters is the ratio: how many times more a Driftless poll costs than the
 * cheapest possible HTTP answer. The target is at most about 3x.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKeyPair, loadPrivateKey, sessionChallenge, signText } from '../src/protocol/signing.ts';
import { runLoad, type LoadResult } from './support/load.ts';
import { hasWrk, runWrk } from './support/wrk.ts';
import { startPrintingUrl, stop } from './support/processes.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const DEVICES = Number(process.env.BENCH_DEVICES ?? 1000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);

async function post<T>(url: string, body: unknown, token?: string): Promise<T> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${url}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

async function enrolFleet(server: string): Promise<{ session: string; etag: string }[]> {
  await post(`${server}/v1/apply`, {
    resources: [{
      apiVersion: 'driftless/v1', kind: 'Deployment', metadata: { name: 'pos' },
      spec: { selector: { matchLabels: { tier: 'store' } }, template: { version: '1', components: [{ name: 'pos', image: 'registry.example/pos:1', ports: ['8080:8080'], health: { http: { port: 8080, path: '/healthz' } } }] } },
    }],
  }, 'bench-admin');
  const devices: { session: string; etag: string }[] = [];
  for (let i = 0; i < DEVICES; i++) {
    const name = `dev-${i}`;
    const keys = generateKeyPair();
    await post(`${server}/v1/enroll`, { token: 'bench-enroll', name, site: `site-${i % 50}`, labels: { tier: 'store' }, publicKey: keys.publicKey });
    const timestamp = new Date().toISOString();
    const { token } = await post<{ token: string }>(`${server}/v1/device/session`, { device: name, timestamp, signature: signText(loadPrivateKey(keys.privateKey), sessionChallenge(name, timestamp)) });
    const first = await fetch(`${server}/v1/device/desired-state`, { headers: { authorization: `Bearer ${token}` } });
    await first.arrayBuffer();
    const etag = first.headers.get('etag');
    if (first.status !== 200 || !etag) throw new Error(`device ${name}: first poll answered ${first.status}`);
    devices.push({ session: token, etag });
  }
  return devices;
}

const line = (name: string, r: LoadResult) =>
  `  ${name.padEnd(34)} ${Math.round(r.perSecond).toString().padStart(8)} req/s  (${r.notModified} answers 304, ${r.errors} other, ${r.seconds.toFixed(1)} s)`;

const dataDir = mkdtempSync(join(tmpdir(), 'driftless-bench-checkin-'));
const node = process.execPath;
const server = await startPrintingUrl(node, [join(root, 'src/cli/main.ts'), 'server', '--data', dataDir, '--listen', '127.0.0.1:0', '--admin-token', 'bench-admin', '--enroll-token', 'bench-enroll', '--poll-interval', '60'], { ...process.env, DRIFTLESS_CONFIG: join(dataDir, 'cli.json') });
const bare = await startPrintingUrl(node, [join(root, 'bench/support/bare-304.ts')]);
try {
  const devices = await enrolFleet(server.url);
  const headers = devices.map((d) => ({ authorization: `Bearer ${d.session}`, 'if-none-match': d.etag }));
  // wrk (C) keeps the load generator far cheaper than the servers; the Node generator is the fallback.
  const useWrk = await hasWrk();
  const load = (url: string, seconds: number) =>
    useWrk
      ? runWrk({ url, headers, seconds, connections: CONNECTIONS, dir: dataDir })
      : runLoad({ url, seconds, connections: CONNECTIONS, headersFor: (i) => headers[i % headers.length]! });
  // Warm both up (JIT, connection pools), then measure one after the other on the same machine.
  await load(`${server.url}/v1/device/desired-state`, 1);
  await load(`${bare.url}/`, 1);
  const baseline = await load(`${bare.url}/`, SECONDS);
  const driftless = await load(`${server.url}/v1/device/desired-state`, SECONDS);
  if (driftless.errors > 0) throw new Error(`${driftless.errors} polls were not answered 304`);
  const ratio = baseline.perSecond / driftless.perSecond;
  console.log(`bench/checkin: unchanged-state poll, ${DEVICES} enrolled devices, ${CONNECTIONS} connections, ${SECONDS} s each, load from ${useWrk ? 'wrk' : 'a Node client (install wrk for a cheaper generator)'}`);
  console.log(line('bare Node http answering 304', baseline));
  console.log(line('driftless desired-state poll (304)', driftless));
  console.log(`  cost ratio (bare / driftless): ${ratio.toFixed(2)}x   target: <= 3x`);
} finally {
  await stop(server.child);
  await stop(bare.child);
  rmSync(dataDir, { recursive: true, force: true });
}
