import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestPostgres, type TestPostgres } from '../../../test/support/postgres.ts';
import { waitFor } from '../../../test/support/wait.ts';
import { chunks, joinPostgresCluster, type Cluster, type ClusterMessage } from './cluster.ts';

// Replicas on a real PostgreSQL server: announcements, the lead, and a cut announcement connection.

let server: TestPostgres;
let url: string;
before(async () => {
  server = await startTestPostgres();
  url = await server.createDatabase();
});
after(() => server?.stop());

type Replica = { cluster: Cluster; heard: ClusterMessage[]; resyncs: number };

async function replica(opts: { resyncEveryMs?: number } = {}): Promise<Replica> {
  const r: Replica = { cluster: null as unknown as Cluster, heard: [], resyncs: 0 };
  r.cluster = await joinPostgresCluster(url, opts);
  r.cluster.attach({ onMessage: (m) => void r.heard.push(m), onResync: () => void r.resyncs++, holds: () => false }, 'http://unused');
  return r;
}

describe('cluster of server replicas on PostgreSQL', () => {
  test('an announcement reaches every other replica, not the one that made it', async () => {
    const [a, b, c] = [await replica(), await replica(), await replica()];
    try {
      await a.cluster.announce({ kind: 'device', name: 'pos-1', status: 'revoked' });
      await waitFor('b and c to hear it', () => [b.heard.length, c.heard.length], ([nb, nc]) => nb === 1 && nc === 1, { timeoutMs: 5000 });
      assert.deepEqual(b.heard, [{ kind: 'device', name: 'pos-1', status: 'revoked' }]);
      assert.deepEqual(c.heard, b.heard);
      assert.deepEqual(a.heard, []);
    } finally {
      await Promise.all([a, b, c].map((r) => r.cluster.close()));
    }
  });

  test('a long device list arrives whole, in announcements that fit the payload limit', async () => {
    const [a, b] = [await replica(), await replica()];
    try {
      const devices = Array.from({ length: 3000 }, (_, i) => `store-${String(i).padStart(5, '0')}-checkout`);
      await a.cluster.announce({ kind: 'desired', devices });
      const heard = () => b.heard.flatMap((m) => (m.kind === 'desired' && m.devices !== 'all' ? m.devices : []));
      await waitFor('every device heard', heard, (names) => names.length === devices.length, { timeoutMs: 5000 });
      assert.deepEqual(heard(), devices);
      assert.ok(b.heard.length > 1, 'in several announcements');
      await a.cluster.announce({ kind: 'desired', devices: 'all' });
      await waitFor('"all" heard', () => b.heard.at(-1), (m) => m?.kind === 'desired' && m.devices === 'all', { timeoutMs: 5000 });
    } finally {
      await Promise.all([a, b].map((r) => r.cluster.close()));
    }
  });

  test('locate: the replica holding a device answers with its URL; nobody holding it is null, soon', async () => {
    const holder = await joinPostgresCluster(url);
    holder.attach({ onMessage: () => undefined, onResync: () => undefined, holds: (device) => device === 'pos-7' }, 'http://10.0.0.7:7480');
    const other = await joinPostgresCluster(url);
    other.attach({ onMessage: () => undefined, onResync: () => undefined, holds: () => false }, 'http://10.0.0.8:7480');
    const asker = await replica();
    try {
      assert.equal(await asker.cluster.locate('pos-7'), 'http://10.0.0.7:7480');
      assert.equal(await asker.cluster.locate('pos-8', 300), null);
      assert.equal(await holder.locate('pos-7', 300), null, 'a replica does not answer itself');
    } finally {
      await Promise.all([holder.close(), other.close(), asker.cluster.close()]);
    }
  });

  test('one replica leads at a time; when it is gone, another takes the lead', async () => {
    const [a, b] = [await replica(), await replica()];
    try {
      const first = [await a.cluster.leads(), await b.cluster.leads()];
      assert.deepEqual(first, [true, false]);
      assert.equal(await a.cluster.leads(), true, 'it keeps the lead');
      assert.equal(await b.cluster.leads(), false);
      await a.cluster.close();
      assert.equal(await a.cluster.leads(), false, 'a closed replica leads nothing');
      assert.equal(await b.cluster.leads(), true);
    } finally {
      await Promise.all([a, b].map((r) => r.cluster.close()));
    }
  });

  test('a replica whose connections are cut reconnects, resyncs, hears announcements again, and can lead again', async () => {
    const [a, b] = [await replica(), await replica()];
    try {
      assert.equal(await b.cluster.leads(), true);
      assert.deepEqual([a.resyncs, b.resyncs], [1, 1], 'one resync each when attached, for what came before');
      // Every connection of this replica, as a restarted database or a cut link would end them.
      await server.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'driftless server' AND pid <> pg_backend_pid()`);
      await waitFor('b to resync after reconnecting', () => b.resyncs, (n) => n >= 2, { timeoutMs: 15_000 });
      await waitFor('a to resync too', () => a.resyncs, (n) => n >= 2, { timeoutMs: 15_000 });
      await a.cluster.announce({ kind: 'device', name: 'pos-2', status: 'accepted' });
      await waitFor('b to hear a again', () => b.heard.length, (n) => n === 1, { timeoutMs: 5000 });
      const leads = [await a.cluster.leads(), await b.cluster.leads()];
      assert.equal(leads.filter(Boolean).length, 1, `exactly one leads after the cut: ${JSON.stringify(leads)}`);
    } finally {
      await Promise.all([a, b].map((r) => r.cluster.close()));
    }
  });

  test('and resyncs on its period even when nothing was cut', async () => {
    const a = await replica({ resyncEveryMs: 50 });
    try {
      await waitFor('periodic resyncs after the one at attaching', () => a.resyncs, (n) => n >= 3, { timeoutMs: 5000 });
    } finally {
      await a.cluster.close();
    }
  });
});

describe('chunks', () => {
  test('keeps order, loses nothing, and keeps each list under the limit', () => {
    const devices = Array.from({ length: 500 }, (_, i) => `d-${i}-${'x'.repeat(i % 40)}`);
    const lists = chunks(devices, 1000);
    assert.deepEqual(lists.flat(), devices);
    for (const list of lists) assert.ok(Buffer.byteLength(JSON.stringify(list)) <= 1000 + 2, String(Buffer.byteLength(JSON.stringify(list))));
    assert.deepEqual(chunks([]), []);
  });
});
