import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createIdentity, pinServerKey } from '../../src/agent/enroll/identity.ts';
import { createDirStorage } from '../../src/agent/storage/storage.ts';
import { createServerClient } from '../../src/agent/sync/client.ts';
import { startServer, type RunningServer } from '../../src/server/server.ts';
import { createRandom } from '../../src/sim/random.ts';
import { run } from '../support/child.ts';

// The telemetry outbox killed with SIGKILL at hundreds of points while it writes and uploads:
// separate worker processes (test/support/outbox-worker.ts) run the real outbox, upload loop and
// client against a real server, and die at a failpoint the test names. Each start continues from
// the data directory the previous one left; a last clean start drains. Every record a worker
// printed as acknowledged must then be on the server exactly once, in order.

const WORKER = fileURLToPath(new URL('../support/outbox-worker.ts', import.meta.url));
const DEVICES = 4;
const KILLS_PER_DEVICE = 54;
const STEPS = 10;
const ADMIN = 'admin-outbox-crash';
const ENROLL = 'enroll-outbox-crash';

type Start = { acked: string[]; killedAt: string | null; hits: { total: number; byName: Record<string, number> } | null; code: number | null };

describe('outbox crash test', { timeout: 180_000 }, () => {
  // A kill -9 leaves the page cache alone, so a RAM-backed directory loses nothing this test looks
  // for and spares it the disk's fsync latency (power loss is the power-cut test's business).
  const root = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'driftless-outbox-crash-'));
  let server: RunningServer;

  before(async () => {
    server = await startServer({ dataDir: join(root, 'server'), host: '127.0.0.1', port: 0, adminToken: ADMIN, enrollToken: ENROLL, logger: false });
  });
  after(async () => {
    await server?.close();
    rmSync(root, { recursive: true, force: true });
  });

  async function enroll(name: string): Promise<string> {
    const dir = join(root, name);
    const storage = createDirStorage(dir);
    const identity = createIdentity(storage, name, server.url);
    const client = createServerClient({ serverUrl: server.url, device: name, privateKey: () => null, now: Date.now });
    const answer = await client.enroll({ token: ENROLL, name, publicKey: identity.publicKey });
    pinServerKey(storage, identity, answer.serverKey);
    return dir;
  }

  async function start(dir: string, runNumber: number, killAt: string, drain = false): Promise<Start> {
    const env = {
      ...process.env,
      OUTBOX_DIR: dir,
      OUTBOX_SERVER: server.url,
      OUTBOX_RUN: String(runNumber),
      OUTBOX_KILL_AT: killAt,
      OUTBOX_STEPS: String(STEPS),
      OUTBOX_DRAIN: drain ? '1' : '0',
      // Hundreds of starts: compiled code cached after the first keeps each one short.
      NODE_COMPILE_CACHE: join(root, 'compile-cache'),
    };
    const result = await run(process.execPath, [WORKER], { env, timeoutMs: 30_000 });
    const acked = [...result.stdout.matchAll(/^acked (rec \d+)$/gm)].map((m) => m[1]!);
    const killedAt = /^killed \d+ (.+)$/m.exec(result.stdout)?.[1] ?? null;
    const hits = /^hits (\d+) (.+)$/m.exec(result.stdout);
    if (killedAt === null && result.code !== 0) throw new Error(`worker run ${runNumber} failed (exit ${result.code}):\n${result.stderr}`);
    return { acked, killedAt, hits: hits ? { total: Number(hits[1]), byName: JSON.parse(hits[2]!) as Record<string, number> } : null, code: result.code };
  }

  async function logsOf(name: string): Promise<string[]> {
    const lines: string[] = [];
    for (let after = 0; ; ) {
      const response = await fetch(`${server.url}/v1/devices/${name}/logs?after=${after}&limit=1000`, { headers: { authorization: `Bearer ${ADMIN}` } });
      assert.equal(response.status, 200, await response.clone().text());
      const page = (await response.json()) as { logs: { seq: number; line: string }[]; next: number };
      if (page.logs.length === 0) return lines;
      lines.push(...page.logs.map((l) => l.line));
      after = page.next;
    }
  }

  test('every acknowledged record reaches the server exactly once, in order, across hundreds of SIGKILLs', async () => {
    const seed = Number(process.env.OUTBOX_CRASH_SEED ?? Date.now() % 1_000_000);
    const failpoints = new Map<string, number>();
    const totals = { kills: 0, starts: 0, acked: 0, losses: 0, duplicates: 0, outOfOrder: 0 };

    await Promise.all(
      Array.from({ length: DEVICES }, async (_, d) => {
        const name = `outbox-crash-${d}`;
        // One random source per device: the devices run concurrently, and a seed must give the same kill points.
        const random = createRandom(seed * 31 + d);
        const dir = await enroll(name);
        const acked: string[] = [];
        let runNumber = 0;
        // A clean start first: which failpoints a start passes and how often, so kill points cover all of them.
        const first = await start(dir, ++runNumber, '0');
        acked.push(...first.acked);
        const { total, byName } = first.hits!;
        const names = Object.keys(byName).sort();
        const offset = random.int(names.length);
        // Half the kill points stratified over the whole sequence of a start, half spread over the kinds of
        // failpoint at a random occurrence (so the few upload failpoints get their share); in random order.
        const half = Math.ceil(KILLS_PER_DEVICE / 2);
        const points = Array.from({ length: KILLS_PER_DEVICE }, (_, i) => {
          if (i < half) return String(1 + Math.floor(((i + random.next()) / half) * total));
          const name = names[(i + offset) % names.length]!;
          return `${name}#${1 + random.int(byName[name]!)}`;
        });
        for (let i = points.length - 1; i > 0; i--) {
          const j = random.int(i + 1);
          [points[i], points[j]] = [points[j]!, points[i]!];
        }
        let kills = 0;
        while (kills < points.length) {
          assert.ok(runNumber < 4 * KILLS_PER_DEVICE, `${name}: too many starts without a kill`);
          const result = await start(dir, ++runNumber, points[kills]!);
          acked.push(...result.acked);
          if (result.killedAt === null) {
            // This start passed fewer failpoints than the point named: draw another.
            points[kills] = String(1 + random.int(total));
            continue;
          }
          kills++;
          failpoints.set(result.killedAt, (failpoints.get(result.killedAt) ?? 0) + 1);
        }
        const last = await start(dir, ++runNumber, '0', true);
        acked.push(...last.acked);

        const stored = await logsOf(name);
        const counts = new Map<string, number>();
        for (const line of stored) counts.set(line, (counts.get(line) ?? 0) + 1);
        const numbers = stored.map((line) => Number(line.slice(4)));
        totals.kills += kills;
        totals.starts += runNumber;
        totals.acked += acked.length;
        totals.losses += acked.filter((line) => !counts.has(line)).length;
        totals.duplicates += [...counts.values()].reduce((sum, n) => sum + n - 1, 0);
        totals.outOfOrder += numbers.filter((n, i) => i > 0 && n <= numbers[i - 1]!).length;
      }),
    );

    console.log(
      `outbox crash (seed ${seed}; OUTBOX_CRASH_SEED=${seed} repeats the kill points): ${totals.kills} kill points over ${totals.starts} worker starts on ${DEVICES} devices, ` +
        `${totals.acked} records acknowledged, ${totals.losses} lost, ${totals.duplicates} duplicated, ${totals.outOfOrder} out of order`,
    );
    console.log(`kills by failpoint: ${[...failpoints].sort((a, b) => b[1] - a[1]).map(([point, n]) => `${point} ×${n}`).join(', ')}`);
    assert.ok(totals.kills >= 200, `only ${totals.kills} kill points`);
    assert.ok(totals.acked > 0);
    assert.deepEqual({ losses: totals.losses, duplicates: totals.duplicates, outOfOrder: totals.outOfOrder }, { losses: 0, duplicates: 0, outOfOrder: 0 });
  });
});
