import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertBusybox, BUSYBOX, createFleet, everyDevice, type AgentHandle, type Fleet, uniqueTag } from '../support/fleet.ts';
import { waitFor } from '../support/wait.ts';

// A component that logs far more than the agent's outbox may hold, while the management plane is
// down: the outbox stays within its quota by dropping its oldest records, and once the server is
// back it is told exactly how many were dropped. Every line is accounted for: received or counted.

const tag = uniqueTag();
const device = `quota-${tag}`;
const QUOTA = 64 * 1024;
const LINES = 20_000;

type LogPage = { logs: { seq: number; component: string; line: string }[]; next: number; dropped: number };

describe('outbox quota while offline', { timeout: 180_000 }, () => {
  let fleet: Fleet;
  let agent: AgentHandle;
  const go = () => join(fleet.dir, `go-${tag}`);

  before(async () => {
    assertBusybox();
    fleet = createFleet('outbox-quota');
    fleet.own(device);
    await fleet.startServer();
    agent = fleet.startAgent({ name: device, labels: { tier: `quota-${tag}` }, extraArgs: ['--outbox-quota', `${QUOTA}`] });
    await fleet.waitForDevices('the agent to enrol', (ds) => ds.some((d) => d.name === device && d.online));
  });

  after(async () => {
    await fleet?.cleanup();
  });

  /** The bytes of the outbox's chunk files: what the quota bounds. */
  function outboxBytes(): number {
    let total = 0;
    for (const name of readdirSync(agent.dataDir)) {
      if (name.startsWith('outbox-chunk-') && name.endsWith('.json')) total += statSync(join(agent.dataDir, name), { throwIfNoEntry: false })?.size ?? 0;
    }
    return total;
  }

  it('keeps the store within its bound and tells the server how many records it dropped', async () => {
    // The component waits for a signal, then writes LINES numbered lines as fast as it can and idles.
    const script = `while [ ! -e ${go()} ]; do sleep 0.1; done; i=1; while [ $i -le ${LINES} ]; do echo "flood $i"; i=$((i+1)); done; exec sleep 100000`;
    await fleet.apply(
      'flood.yaml',
      `apiVersion: driftless/v1
kind: Deployment
metadata: { name: flood-${tag} }
spec:
  selector: { matchLabels: { tier: quota-${tag} } }
  strategy: { waves: [{ percent: 100 }] }
  template:
    version: "1"
    components:
      - name: flood
        command: ["${BUSYBOX}", "sh", "-c", ${JSON.stringify(script)}]
`,
    );
    await fleet.waitForDevices('the flood component to run', everyDevice([device], 'flood', (c) => c.state === 'healthy'));

    // The management plane goes away; the device carries on alone.
    const { dataDir: serverDir, port } = fleet.server!;
    await fleet.server!.stop();
    writeFileSync(go(), '');
    let largest = 0;
    await waitFor(
      'the agent to read the whole flood into its outbox',
      () => {
        largest = Math.max(largest, outboxBytes());
        return newestLine(agent.dataDir);
      },
      (line) => line === `flood ${LINES}`,
      { timeoutMs: 90_000, intervalMs: 20 },
    );
    largest = Math.max(largest, outboxBytes());
    assert.ok(largest <= QUOTA, `outbox held ${largest} bytes of chunks at most; the quota is ${QUOTA}`);

    await fleet.startServer({ dataDir: serverDir, listen: `127.0.0.1:${port}` });
    const flood: number[] = [];
    const seqs: number[] = [];
    let page: LogPage = { logs: [], next: 0, dropped: 0 };
    await waitFor(
      'the newest flood line to reach the server',
      async () => {
        for (;;) {
          page = (await fleet.api(`/v1/devices/${device}/logs?after=${page.next}&limit=1000`)).body as LogPage;
          for (const entry of page.logs) {
            seqs.push(entry.seq);
            const n = /^flood (\d+)$/.exec(entry.line)?.[1];
            if (entry.component === 'flood' && n !== undefined) flood.push(Number(n));
          }
          if (page.logs.length < 1000) return flood.at(-1);
        }
      },
      (last) => last === LINES,
      { timeoutMs: 60_000, context: () => fleet.diagnostics() },
    );

    // What arrived of the flood is its newest stretch, in order, each line once.
    const first = flood[0]!;
    assert.ok(first > 1, 'most of the flood had to be dropped');
    assert.deepEqual(flood, Array.from({ length: LINES - first + 1 }, (_, i) => first + i), 'the newest lines, consecutive, none twice');
    // The server was told what went missing: every record number up to the newest is stored or counted as dropped.
    const metrics = ((await fleet.api(`/v1/devices/${device}/metrics?limit=5000`)).body as { metrics: { seq: number }[] }).metrics.map((m) => m.seq);
    const events = (await fleet.deviceDetail(device)).events.map((e) => e.seq);
    const newest = Math.max(...seqs);
    const stored = new Set([...seqs, ...metrics, ...events].filter((seq) => seq <= newest));
    assert.equal(stored.size + page.dropped, newest, `${stored.size} stored + ${page.dropped} dropped must number all ${newest} records`);
    assert.ok(page.dropped >= first - 1, `the ${first - 1} flood lines that never arrived are among the ${page.dropped} dropped`);
    process.stdout.write(`# quota ${QUOTA} B: ${LINES} lines written offline, ${flood.length} delivered, ${page.dropped} dropped and reported, largest outbox ${largest} B\n`);
  });
});

/** The last line the outbox holds (in its newest chunk), or null. */
function newestLine(dataDir: string): string | null {
  const chunks = readdirSync(dataDir).filter((name) => name.startsWith('outbox-chunk-') && name.endsWith('.json')).sort();
  const newest = chunks.at(-1);
  if (!newest) return null;
  try {
    const chunk = JSON.parse(readFileSync(join(dataDir, newest), 'utf8')) as { records: { kind: string; line?: string }[] };
    return chunk.records.filter((r) => r.kind === 'log').at(-1)?.line ?? null;
  } catch {
    return null; // replaced while being read: look again
  }
}
