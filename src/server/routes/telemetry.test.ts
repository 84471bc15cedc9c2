import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import type { TelemetryRecord } from '../../protocol/messages.ts';
import { generateKeyPair, loadPrivateKey, sessionChallenge, signText } from '../../protocol/signing.ts';
import { ok, refused, startInProcessServer, type InProcessServer } from '../../../test/support/in-process-server.ts';

// The telemetry routes in process: devices upload through the real device session, operators read
// back through API tokens, and /metrics is scraped as Prometheus would.

const VIEWER = 'viewer-token';
const ENROLL = 'enroll-token';
const START = Date.parse('2025-06-03T08:00:00.000Z');
const AT = new Date(START).toISOString();

type Harness = InProcessServer;

const harness = () => startInProcessServer({ start: START, tokens: { [VIEWER]: 'viewer' }, enrollToken: ENROLL });

/** Enrolls a device and opens its session, as the agent does; returns the session token. */
async function enrolledDevice(h: Harness, name: string): Promise<string> {
  const keys = generateKeyPair();
  const enroll = await h.app.inject({ method: 'POST', url: '/v1/enroll', payload: { token: ENROLL, name, site: 'store-12', labels: { tier: 'store' }, publicKey: keys.publicKey } });
  assert.equal(enroll.statusCode, 201, enroll.body);
  const timestamp = new Date(h.clock.ms).toISOString();
  const session = await h.app.inject({
    method: 'POST',
    url: '/v1/device/session',
    payload: { device: name, timestamp, signature: signText(loadPrivateKey(keys.privateKey), sessionChallenge(name, timestamp)) },
  });
  assert.equal(session.statusCode, 200, session.body);
  return (session.json() as { token: string }).token;
}

const log = (seq: number, component: string, line: string): TelemetryRecord => ({ seq, at: AT, kind: 'log', component, line });
const metric = (seq: number, name: string, value: number, component?: string): TelemetryRecord => ({
  seq,
  at: AT,
  kind: 'metric',
  name,
  value,
  ...(component ? { component } : {}),
});

function upload(h: Harness, token: string, body: unknown, opts: { gzip?: boolean; encoding?: string; raw?: Buffer } = {}): Promise<LightMyRequestResponse> {
  const json = Buffer.from(JSON.stringify(body));
  const gzip = opts.gzip ?? true;
  return h.app.inject({
    method: 'POST',
    url: '/v1/device/telemetry',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      ...(opts.encoding ? { 'content-encoding': opts.encoding } : gzip ? { 'content-encoding': 'gzip' } : {}),
    },
    payload: opts.raw ?? (gzip ? gzipSync(json) : json),
  });
}

function get(h: Harness, url: string, token?: string): Promise<LightMyRequestResponse> {
  return h.app.inject({ method: 'GET', url, headers: token ? { authorization: `Bearer ${token}` } : {} });
}



type LogPage = { logs: { seq: number; at: string; component: string; line: string }[]; next: number; dropped: number };
const linesOf = (page: LogPage) => page.logs.map((l) => l.line);

describe('telemetry routes', () => {
  let h: Harness;
  let device: string;

  beforeEach(async () => {
    h = await harness();
    device = await enrolledDevice(h, 'pos-1');
  });
  afterEach(() => h.close());

  async function logsOf(name: string, query = ''): Promise<LogPage> {
    return ok<LogPage>(await get(h, `/v1/devices/${name}/logs${query ? `?${query}` : ''}`, VIEWER));
  }

  test('a gzip batch is stored and acknowledged; the same batch again stores nothing new and gets the same answer', async () => {
    const batch = { records: [log(1, 'web', 'started'), metric(2, 'cpu_percent', 12.5), log(3, 'web', 'listening on 8080')], dropped: 0 };
    assert.deepEqual(ok(await upload(h, device, batch)), { ackedSeq: 3 });
    assert.deepEqual(linesOf(await logsOf('pos-1')), ['started', 'listening on 8080']);

    assert.deepEqual(ok(await upload(h, device, batch)), { ackedSeq: 3 }, 'a resend after a lost answer');
    const page = await logsOf('pos-1');
    assert.deepEqual(
      page.logs.map((l) => l.seq),
      [1, 3],
    );
    assert.equal((await h.store.listMetrics('pos-1', { limit: 100 })).length, 1);
  });

  test('plain JSON is accepted too', async () => {
    assert.deepEqual(ok(await upload(h, device, { records: [log(1, 'web', 'plain')], dropped: 0 }, { gzip: false })), { ackedSeq: 1 });
    assert.deepEqual(ok(await upload(h, device, { records: [log(2, 'web', 'identity')], dropped: 0 }, { gzip: false, encoding: 'identity' })), { ackedSeq: 2 });
    assert.deepEqual(linesOf(await logsOf('pos-1')), ['plain', 'identity']);
  });

  test('a batch with records below and above the mark stores only the new ones; gaps are accepted', async () => {
    ok(await upload(h, device, { records: [log(1, 'web', 'one'), log(2, 'web', 'two')], dropped: 0 }));
    // Records 1–2 again (their answer was lost), then 5 and 9: 3, 4, 6–8 were dropped on the device.
    const reply = ok(await upload(h, device, { records: [log(1, 'web', 'ONE?'), log(2, 'web', 'TWO?'), log(5, 'web', 'five'), log(9, 'web', 'nine')], dropped: 5 }));
    assert.deepEqual(reply, { ackedSeq: 9 });
    const page = await logsOf('pos-1');
    assert.deepEqual(
      page.logs.map((l) => [l.seq, l.line]),
      [
        [1, 'one'],
        [2, 'two'],
        [5, 'five'],
        [9, 'nine'],
      ],
    );
    assert.equal(page.dropped, 5);
    // An empty batch only reports; the mark stays.
    assert.deepEqual(ok(await upload(h, device, { records: [], dropped: 5 })), { ackedSeq: 9 });
  });

  test('logs page with after and limit, tail gives the newest in order, component filters', async () => {
    const records: TelemetryRecord[] = [];
    for (let seq = 1; seq <= 30; seq++) records.push(seq % 3 === 0 ? log(seq, 'db', `db ${seq}`) : log(seq, 'web', `web ${seq}`));
    records.push(metric(31, 'memory_used_bytes', 1e9));
    ok(await upload(h, device, { records, dropped: 0 }));

    const first = await logsOf('pos-1', 'limit=7');
    assert.deepEqual(
      first.logs.map((l) => l.seq),
      [1, 2, 3, 4, 5, 6, 7],
    );
    assert.equal(first.next, 7);
    const second = await logsOf('pos-1', `after=${first.next}&limit=7`);
    assert.deepEqual(
      second.logs.map((l) => l.seq),
      [8, 9, 10, 11, 12, 13, 14],
    );
    // Paging to the end: every line once, in order.
    const all: number[] = [];
    let next = 0;
    for (let i = 0; i < 20; i++) {
      const page = await logsOf('pos-1', `after=${next}&limit=4`);
      all.push(...page.logs.map((l) => l.seq));
      if (page.logs.length === 0) {
        assert.equal(page.next, next, 'an empty page leaves `next` where it was');
        break;
      }
      next = page.next;
    }
    assert.deepEqual(
      all,
      Array.from({ length: 30 }, (_, i) => i + 1),
    );

    const tail = await logsOf('pos-1', 'tail=4');
    assert.deepEqual(linesOf(tail), ['web 26', 'db 27', 'web 28', 'web 29', 'db 30'].slice(1));
    assert.equal(tail.next, 30);

    const db = await logsOf('pos-1', 'component=db&tail=3');
    assert.deepEqual(linesOf(db), ['db 24', 'db 27', 'db 30']);
    const dbPaged = await logsOf('pos-1', 'component=db&after=20');
    assert.deepEqual(linesOf(dbPaged), ['db 21', 'db 24', 'db 27', 'db 30']);
    assert.ok(dbPaged.logs.every((l) => l.component === 'db'));

    refused(await get(h, '/v1/devices/pos-1/logs?tail=3&after=2', VIEWER), 400, 'invalid-input', /tail/);
    refused(await get(h, '/v1/devices/pos-1/logs?limit=5000', VIEWER), 400, 'invalid-input', /limit/);
    refused(await get(h, '/v1/devices/pos-1/logs?limit=-1', VIEWER), 400, 'invalid-input', /limit/);
    refused(await get(h, '/v1/devices/pos-1/logs?follow=true', VIEWER), 400, 'invalid-input');
    refused(await get(h, '/v1/devices/nope/logs', VIEWER), 404, 'not-found', /nope/);
  });

  test('dropped is reported as the highest running total the device sent', async () => {
    ok(await upload(h, device, { records: [log(1, 'web', 'a')], dropped: 40 }));
    // A late, older batch carries a smaller total: it must not lower what was reported.
    ok(await upload(h, device, { records: [log(2, 'web', 'b')], dropped: 12 }));
    assert.equal((await logsOf('pos-1')).dropped, 40);
    ok(await upload(h, device, { records: [], dropped: 55 }));
    assert.equal((await logsOf('pos-1')).dropped, 55);
  });

  test('a truncated gzip body is refused with a clear message and stores nothing', async () => {
    const whole = gzipSync(Buffer.from(JSON.stringify({ records: [log(1, 'web', 'x'.repeat(2000))], dropped: 0 })));
    const reply = await upload(h, device, null, { raw: whole.subarray(0, Math.floor(whole.length / 2)) });
    refused(reply, 400, 'invalid-input', /^request body is not valid gzip: unexpected end of file$/);
    assert.deepEqual((await logsOf('pos-1')).logs, []);
    assert.deepEqual(await h.store.getTelemetryMark('pos-1'), { seq: 0, dropped: 0 });
  });

  test('a body that is not gzip at all but says it is, is refused', async () => {
    const reply = await upload(h, device, null, { raw: Buffer.from(JSON.stringify({ records: [log(1, 'web', 'x')], dropped: 0 })) });
    refused(reply, 400, 'invalid-input', /^request body is not valid gzip: incorrect header check$/);
    assert.deepEqual(await h.store.getTelemetryMark('pos-1'), { seq: 0, dropped: 0 });
  });

  test('a compressed body that inflates past the body limit is refused as too large, not unpacked', async () => {
    const bomb = gzipSync(Buffer.from(JSON.stringify({ records: [log(1, 'web', 'x')], dropped: 0, padding: ' '.repeat(8 * 1024 * 1024) })));
    assert.ok(bomb.length < 64 * 1024, 'small on the wire');
    refused(await upload(h, device, null, { raw: bomb }), 413, 'payload-too-large');
    assert.deepEqual(await h.store.getTelemetryMark('pos-1'), { seq: 0, dropped: 0 });
  });

  test('an unknown content-encoding is refused', async () => {
    const reply = await upload(h, device, { records: [log(1, 'web', 'x')], dropped: 0 }, { gzip: false, encoding: 'br' });
    refused(reply, 400, 'invalid-input', /content-encoding "br"/);
    assert.deepEqual(await h.store.getTelemetryMark('pos-1'), { seq: 0, dropped: 0 });
  });

  test('a record with an unknown field or a wrong kind is refused, naming the problem, and nothing of the batch is stored', async () => {
    const good = log(1, 'web', 'fine');
    const extra = refused(await upload(h, device, { records: [good, { ...log(2, 'web', 'x'), colour: 'red' }], dropped: 0 }), 400, 'invalid-input');
    assert.equal(extra, 'request body: records[1].colour: unknown field "colour"');
    const kind = refused(await upload(h, device, { records: [good, { ...log(2, 'web', 'x'), kind: 'trace' }], dropped: 0 }), 400, 'invalid-input');
    assert.equal(kind, 'request body: records[1].kind: must be one of "log", "metric", "event", not "trace"');
    const missing = refused(await upload(h, device, { records: [{ seq: 2, at: AT, kind: 'metric', name: 'up' }], dropped: 0 }), 400, 'invalid-input');
    assert.equal(missing, 'request body: records[0].value: missing required field "value"');
    refused(await upload(h, device, { records: [{ ...good, seq: 0 }], dropped: 0 }), 400, 'invalid-input', /seq/);
    refused(await upload(h, device, { records: [good], dropped: -1 }), 400, 'invalid-input', /dropped/);
    refused(await upload(h, device, { records: [good] }), 400, 'invalid-input', /dropped/);
    refused(await upload(h, device, { records: [metric(2, 'CPU %', 1)], dropped: 0 }), 400, 'invalid-input', /name/);
    assert.deepEqual(await h.store.getTelemetryMark('pos-1'), { seq: 0, dropped: 0 });
    assert.deepEqual((await logsOf('pos-1')).logs, []);
  });

  test('only a device session uploads; device tokens do not read logs, API tokens do', async () => {
    refused(await upload(h, VIEWER, { records: [log(1, 'web', 'x')], dropped: 0 }), 401, 'unauthorized', /device session/);
    refused(await upload(h, 'garbage', { records: [log(1, 'web', 'x')], dropped: 0 }), 401, 'unauthorized');

    const other = await enrolledDevice(h, 'pos-2');
    ok(await upload(h, other, { records: [log(1, 'web', 'secret of pos-2')], dropped: 0 }));
    refused(await get(h, '/v1/devices/pos-2/logs', device), 401, 'unauthorized');
    refused(await get(h, '/v1/devices/pos-2/logs', other), 401, 'unauthorized', /API token/);
    refused(await get(h, '/v1/devices/pos-2/logs'), 401, 'unauthorized');
    assert.deepEqual(linesOf(await logsOf('pos-2')), ['secret of pos-2']);
    assert.deepEqual((await logsOf('pos-1')).logs, [], 'one device’s records never land on another');
  });

  test('an upload counts as contact with the device', async () => {
    h.clock.ms += 600_000; // within the session's lifetime
    ok(await upload(h, device, { records: [log(1, 'web', 'back')], dropped: 0 }));
    const view = ok<{ lastSeen: string | null }>(await get(h, '/v1/devices/pos-1', VIEWER));
    assert.equal(view.lastSeen, new Date(h.clock.ms).toISOString());
  });

  test('metrics of a device: newest first, filtered by name and component', async () => {
    ok(
      await upload(h, device, {
        records: [metric(1, 'cpu_percent', 10), metric(2, 'up', 1, 'web'), metric(3, 'cpu_percent', 20), metric(4, 'restarts', 3, 'web'), log(5, 'web', 'not a metric')],
        dropped: 0,
      }),
    );
    type Metrics = { metrics: { seq: number; name: string; value: number; component: string | null }[] };
    const all = ok<Metrics>(await get(h, '/v1/devices/pos-1/metrics', VIEWER));
    assert.deepEqual(
      all.metrics.map((m) => [m.seq, m.name, m.value, m.component]),
      [
        [4, 'restarts', 3, 'web'],
        [3, 'cpu_percent', 20, null],
        [2, 'up', 1, 'web'],
        [1, 'cpu_percent', 10, null],
      ],
    );
    const cpu = ok<Metrics>(await get(h, '/v1/devices/pos-1/metrics?name=cpu_percent&limit=1', VIEWER));
    assert.deepEqual(
      cpu.metrics.map((m) => m.value),
      [20],
    );
    const web = ok<Metrics>(await get(h, '/v1/devices/pos-1/metrics?component=web', VIEWER));
    assert.deepEqual(
      web.metrics.map((m) => m.name),
      ['restarts', 'up'],
    );
    refused(await get(h, '/v1/devices/nope/metrics', VIEWER), 404, 'not-found');
    refused(await get(h, '/v1/devices/pos-1/metrics'), 401, 'unauthorized');
  });

  test('GET /metrics: fleet figures in the Prometheus text format, behind a token', async () => {
    refused(await get(h, '/metrics'), 401, 'unauthorized');
    const second = await enrolledDevice(h, 'pos-2');
    ok(await upload(h, device, { records: [log(1, 'web', 'a')], dropped: 7 }));
    ok(await upload(h, second, { records: [], dropped: 5 }));
    const at = new Date(h.clock.ms).toISOString();
    const component = (name: string, state: 'healthy' | 'failed') => ({ name, deployment: 'shop', desiredVersion: '1', version: '1', state, reason: null, detail: null, since: at });
    await h.store.recordStatus('pos-1', 1, at, at, [component('web', 'healthy'), component('db', 'failed')]);
    await h.store.recordStatus('pos-2', 1, at, at, [component('web', 'healthy')]);

    const reply = await get(h, '/metrics', VIEWER);
    assert.equal(reply.statusCode, 200, reply.body);
    assert.match(String(reply.headers['content-type']), /^text\/plain/);
    const text = reply.body;
    const value = (series: string) => {
      const found = text.split('\n').find((l) => l.startsWith(`${series} `));
      assert.ok(found, `${series} missing from:\n${text.slice(0, 2000)}`);
      return Number(found.slice(series.length + 1));
    };
    assert.equal(value('driftless_devices{presence="online"}'), 2);
    assert.equal(value('driftless_devices{presence="offline"}'), 0);
    assert.equal(value('driftless_components{state="healthy"}'), 2);
    assert.equal(value('driftless_components{state="failed"}'), 1);
    assert.equal(value('driftless_telemetry_dropped_records'), 12);
    assert.match(text, /# TYPE driftless_http_requests_total counter/);
    assert.ok(value('driftless_http_requests_total{route="/v1/device/telemetry",status="2xx"}') >= 2);
    assert.ok(value('driftless_http_requests_total{route="/metrics",status="4xx"}') >= 1, 'the refused scrape was counted');

    h.clock.ms += 3_600_000; // an hour without contact
    const later = (await get(h, '/metrics', VIEWER)).body;
    assert.match(later, /^driftless_devices\{presence="offline"\} 2$/m);
  });
});
