import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { verifyAuditChain } from '../../protocol/audit-chain.ts';
import { migrateToLatest } from '../store/migrate.ts';
import { openSqlite } from '../store/sqlite.ts';
import { createSqlStore } from '../store/store.ts';
import { auditQuery, createAuditLog } from './audit-log.ts';
import { auditAction, auditTarget, errorCodeOf, shouldAudit } from './describe.ts';

async function withLog<T>(work: (log: ReturnType<typeof createAuditLog>, transactions: { count: number }) => Promise<T>): Promise<T> {
  const db = openSqlite(':memory:');
  await migrateToLatest(db);
  const store = createSqlStore(db);
  const transactions = { count: 0 };
  // Counts the transactions the writer opens: many appends at once share a few.
  const counted = { ...store, transaction: <R>(fn: Parameters<typeof store.transaction<R>>[0]) => (transactions.count++, store.transaction(fn)) };
  try {
    return await work(createAuditLog({ store: counted, now: () => Date.parse('2025-06-01T12:00:00Z') }), transactions);
  } finally {
    await db.destroy();
  }
}

describe('audit log', () => {
  test('appends from many callers at once form one gapless chain per tenant, in few transactions', async () => {
    await withLog(async (log, transactions) => {
      const calls = Array.from({ length: 300 }, (_, i) => log.record({ tenant: i % 3 === 0 ? 'acme' : 'default', actor: `token:t${i}`, action: 'apply', status: 200, detail: { i } }));
      const entries = await Promise.all(calls);
      assert.ok(transactions.count < 20, `${transactions.count} transactions for 300 appends`);
      for (const tenant of ['acme', 'default']) {
        const chain = entries.filter((e) => e.tenant === tenant).sort((a, b) => a.seq - b.seq);
        assert.deepEqual(chain.map((e) => e.seq), chain.map((_, k) => k + 1));
        // Entries come back in the order they were submitted.
        assert.deepEqual(chain.map((e) => e.detail.i), [...chain.map((e) => e.detail.i as number)].sort((a, b) => a - b));
        const verdict = await log.verify(tenant);
        assert.deepEqual([verdict.ok, verdict.entries], [true, chain.length]);
        assert.deepEqual(verifyAuditChain((await log.list(tenant, {})).entries).head, verdict.head);
      }
      assert.deepEqual(await log.verify('nobody'), { ok: true, entries: 0, head: null });
    });
  });

  test('an event that cannot be recorded fails alone, and odd details are stored as they read back', async () => {
    await withLog(async (log) => {
      const good = log.record({ tenant: 'default', actor: 'token:a', action: 'apply', status: 200 });
      const bad = log.record({ tenant: '', actor: 'token:a', action: 'apply', status: 200 });
      const odd = log.record({ tenant: 'default', actor: 'x'.repeat(1000), action: 'exec', detail: { when: new Date(0), nan: Number.NaN, nested: { undefinedMember: undefined } } });
      await assert.rejects(bad, /needs a tenant/);
      assert.equal((await good).seq, 1);
      const entry = await odd;
      assert.deepEqual([entry.seq, entry.status, entry.actor.length], [2, 200, 300]);
      assert.equal((await log.verify('default')).ok, true);
    });
  });

  test('filters mean what they say, and a meaningless one is refused', () => {
    assert.deepEqual(auditQuery({ outcome: 'denied', action: 'rollout.*', since: '2025-06-01T00:00:00+02:00' }), { statuses: [401, 403], actionPrefix: 'rollout.', since: '2025-05-31T22:00:00.000Z' });
    assert.deepEqual(auditQuery({ outcome: '404' }), { statuses: [404] });
    assert.deepEqual(auditQuery({ outcome: 'conflict' }), { error: 'conflict' });
    assert.throws(() => auditQuery({ outcome: 'DROP TABLE' }), /outcome/);
    assert.throws(() => auditQuery({ until: 'soon' }), /until: "soon" is not a time/);
  });
});

describe('what an API call says in the audit trail', () => {
  test('mutating calls and refusals are recorded; reads, device polls and shed load are not', () => {
    const rule = (method: string, status: number, access?: string, policy?: 'all' | 'failures') => shouldAudit({ method, status, access, policy });
    assert.equal(rule('POST', 200, 'operator'), true);
    assert.equal(rule('POST', 409, 'operator'), true);
    assert.equal(rule('GET', 200, 'viewer'), false);
    assert.equal(rule('GET', 401, 'viewer'), true);
    assert.equal(rule('GET', 403, 'admin'), true);
    assert.equal(rule('GET', 304, 'device'), false);
    assert.equal(rule('POST', 200, 'device'), false);
    assert.equal(rule('POST', 400, 'device'), true);
    assert.equal(rule('POST', 429, 'device'), false);
    assert.equal(rule('POST', 429, 'operator'), false);
    assert.equal(rule('POST', 503, 'public'), false);
    assert.equal(rule('POST', 200, 'public', 'failures'), false);
    assert.equal(rule('POST', 401, 'public', 'failures'), true);
  });

  test('actions are named, or fall back to the route; targets never come from a secret', () => {
    assert.equal(auditAction('POST', '/v1/rollouts/:name/:action', { name: 'pos-3', action: 'abort' }), 'rollout.abort');
    assert.equal(auditAction('DELETE', '/v1/sites/:name', { name: 's' }), 'DELETE /v1/sites/:name');
    const enroll = auditTarget('/v1/enroll', {}, { token: 'dle_secret', name: 'pos-01', publicKey: 'AAAA', site: 'store-1' });
    assert.deepEqual(enroll, { target: 'pos-01', detail: { site: 'store-1' } });
    assert.equal(JSON.stringify(auditTarget('/v1/device/session', {}, { device: 'pos-01', signature: 'sig', timestamp: 't' })), '{"target":"pos-01","detail":{}}');
    const many = auditTarget('/v1/apply', {}, { resources: Array.from({ length: 120 }, (_, i) => ({ kind: 'Site', metadata: { name: `s${i}` }, spec: { secret: 'x' } })) });
    assert.deepEqual([many.target, (many.detail.resources as string[]).length, many.detail.more], ['120 resources', 100, 20]);
    assert.equal(errorCodeOf('{"error":{"code":"forbidden","message":"no"}}'), 'forbidden');
    assert.equal(errorCodeOf('not json'), null);
  });
});
