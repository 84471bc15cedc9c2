import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { DriftlessError } from '../protocol/errors.ts';
import type { TelemetryRecord } from '../protocol/messages.ts';
import { startServer, type RunningServer } from '../server/server.ts';
import { createApi, type Api } from './api-client.ts';
import { logsCommand, type LogsOptions } from './logs-command.ts';

// `driftless logs` against a real server listening on a free port, through the CLI's own HTTP client.

const ADMIN = 'logs-admin-token';
const AT = '2025-06-04T09:00:00.000Z';

/**
 * What the command prints. Only text writes are taken: the test runner talks to its parent over
 * the same stdout in binary frames, and those must pass untouched.
 */
function captureOutput() {
  const out: string[] = [];
  const err: string[] = [];
  const originals = { out: process.stdout.write, err: process.stderr.write };
  const tap = (stream: NodeJS.WriteStream, into: string[], original: typeof process.stdout.write) =>
    function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]): boolean {
      if (typeof chunk === 'string') {
        into.push(chunk);
        return true;
      }
      return (original as (...args: unknown[]) => boolean).call(stream, chunk, ...rest);
    } as typeof process.stdout.write;
  process.stdout.write = tap(process.stdout, out, originals.out);
  process.stderr.write = tap(process.stderr, err, originals.err);
  return {
    stdout: () => out.join(''),
    stderr: () => err.join(''),
    restore() {
      process.stdout.write = originals.out;
      process.stderr.write = originals.err;
    },
  };
}

const options = (change: Partial<LogsOptions> = {}): LogsOptions => ({ follow: false, tail: 100, timestamps: false, format: 'table', ...change });

describe('driftless logs', () => {
  let dir: string;
  let server: RunningServer;
  let api: Api;
  let seq = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'driftless-logs-cli-'));
    server = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0, adminToken: ADMIN, enrollToken: 'enroll', logger: false });
    api = createApi({ server: server.url, token: ADMIN });
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  let name: string;
  let device = 0;
  beforeEach(async () => {
    name = `pos-${++device}`;
    seq = 0;
    await server.store.insertDevice({ name, site: 'store-12', labels: {}, facts: {}, publicKey: `key-${name}`, status: 'accepted', enrolledAt: AT, lastSeen: new Date().toISOString(), appliedGeneration: 0 });
  });

  let output: ReturnType<typeof captureOutput> | null = null;
  afterEach(() => {
    output?.restore();
    output = null;
  });

  /** What the agent's uploads would store. */
  async function lines(component: string, ...texts: string[]) {
    const records: TelemetryRecord[] = texts.map((line) => ({ seq: ++seq, at: AT, kind: 'log', component, line }));
    await server.store.recordTelemetry(name, AT, records, 0);
  }

  test('tail shows the newest N lines in order, each with its component', async () => {
    for (let i = 1; i <= 12; i++) await lines(i % 2 ? 'web' : 'db', `line ${i}`);
    output = captureOutput();
    await logsCommand(api, name, undefined, options({ tail: 3 }));
    output.restore();
    assert.equal(output.stdout(), '[db] line 10\n[web] line 11\n[db] line 12\n');
    assert.equal(output.stderr(), '');
  });

  test('a component filter shows only its lines, without the prefix; timestamps on request', async () => {
    await lines('web', 'w1');
    await lines('db', 'd1');
    await lines('web', 'w2');
    output = captureOutput();
    await logsCommand(api, name, 'web', options());
    await logsCommand(api, name, 'db', options({ timestamps: true }));
    output.restore();
    assert.equal(output.stdout(), `w1\nw2\n${AT} d1\n`);
  });

  test('-o json prints the lines as JSON, and refuses --follow', async () => {
    await lines('web', 'w1');
    output = captureOutput();
    await logsCommand(api, name, undefined, options({ format: 'json' }));
    output.restore();
    const parsed = JSON.parse(output.stdout()) as { seq: number; component: string; line: string }[];
    assert.deepEqual(
      parsed.map((l) => [l.seq, l.component, l.line]),
      [[1, 'web', 'w1']],
    );
    await assert.rejects(logsCommand(api, name, undefined, options({ format: 'json', follow: true })), (e: unknown) => e instanceof DriftlessError && e.code === 'invalid-input');
  });

  test('a device that dropped records says so on stderr', async () => {
    await lines('web', 'survivor');
    await server.store.recordTelemetry(name, AT, [], 17);
    output = captureOutput();
    await logsCommand(api, name, undefined, options());
    output.restore();
    assert.equal(output.stdout(), '[web] survivor\n');
    assert.match(output.stderr(), new RegExp(`${name} dropped 17 telemetry records`));
  });

  test('an unknown device is an error a user can act on', async () => {
    await assert.rejects(logsCommand(api, 'no-such-device', undefined, options()), (e: unknown) => e instanceof DriftlessError && e.code === 'not-found' && /no-such-device/.test(e.message));
  });

  test('follow prints the tail, then new lines as they arrive, each once, until stopped', async () => {
    await lines('web', 'old 1', 'old 2');
    await lines('db', 'other component');
    output = captureOutput();
    const stop = new AbortController();
    const following = logsCommand(api, name, 'web', options({ follow: true, tail: 1, intervalMs: 10, signal: stop.signal }));
    const seen = async (text: string) => {
      for (let i = 0; i < 500 && !output!.stdout().includes(text); i++) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.ok(output!.stdout().includes(text), `never printed ${JSON.stringify(text)}; got ${JSON.stringify(output!.stdout())}`);
    };
    try {
      await seen('old 2\n');
      await lines('web', 'new 1', 'new 2');
      await lines('db', 'not for web');
      await seen('new 2\n');
      // More than one page's worth arriving at once is printed whole.
      await lines('web', ...Array.from({ length: 1500 }, (_, i) => `burst ${i}`));
      await seen('burst 1499\n');
    } finally {
      stop.abort();
      await following;
      output.restore();
    }
    const printed = output.stdout().split('\n').filter(Boolean);
    assert.deepEqual(printed, ['old 2', 'new 1', 'new 2', ...Array.from({ length: 1500 }, (_, i) => `burst ${i}`)]);
    assert.equal(output.stderr(), '', 'the device is online: no note about it');
  });

  test('following a device that is offline says so, and still waits for its lines', async () => {
    name = `${name}-away`;
    await server.store.insertDevice({ name, site: 'store-12', labels: {}, facts: {}, publicKey: `key-${name}`, status: 'accepted', enrolledAt: AT, lastSeen: AT, appliedGeneration: 0 });
    await lines('web', 'before the cut');
    output = captureOutput();
    const stop = new AbortController();
    const following = logsCommand(api, name, undefined, options({ follow: true, intervalMs: 10, signal: stop.signal }));
    try {
      for (let i = 0; i < 500 && !output.stderr().includes('offline'); i++) await new Promise((resolve) => setTimeout(resolve, 10));
    } finally {
      stop.abort();
      await following;
      output.restore();
    }
    assert.equal(output.stdout(), '[web] before the cut\n');
    assert.match(output.stderr(), new RegExp(`${name} is offline \\(last seen .* ago\\); its lines arrive when it reconnects`));
  });
});
