import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { WebSocket } from 'ws';
import { decodeFrame, encodeFrame, fromBase64, ServerToAgent, ServerToOperator, toBase64, type AgentToServer, type OperatorToServer } from '../../protocol/channel.ts';
import { generateKeyPair } from '../../protocol/signing.ts';
import { assembleServer } from '../assemble.ts';
import { hashToken, issueSessionToken } from '../auth/tokens.ts';
import { migrateToLatest } from '../store/migrate.ts';
import { openSqlite } from '../store/sqlite.ts';
import { createSqlStore, type DeviceRecord, type Store } from '../store/store.ts';
import type { DeviceChannels } from '../terminal/device-channels.ts';
import { createRecordings } from '../terminal/recordings.ts';

// Remote terminal and exec through a real server on a free port, with real WebSockets both ways.
// The device is a small fake that speaks the channel protocol (server code never imports the
// agent); the agent's own side is tested in agent/terminal/, and both together in test/e2e.

const ADMIN = 'admin-token';
const OPERATOR = 'operator-token';
const VIEWER = 'viewer-token';

type FakeAgent = { socket: WebSocket; closedSessions: string[]; refusedWith: Promise<number> };

/**
 * A device's channel: says hello; a shell echoes input in upper case, answers a resize with its
 * size, and ends with status N on "exit N"; exec prints its command and exits with its length.
 */
function fakeAgent(url: string, token: string, remoteShell: boolean, onHint: () => void): FakeAgent {
  const socket = new WebSocket(`${url.replace('http', 'ws')}/v1/device/channel`, { headers: { authorization: `Bearer ${token}` } });
  const closedSessions: string[] = [];
  const send = (frame: AgentToServer) => socket.send(encodeFrame(frame));
  const output = (session: string, text: string) => send({ type: 'output', session, data: toBase64(text) });
  const refusedWith = new Promise<number>((resolve) => socket.on('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0)));
  socket.on('error', () => undefined);
  socket.on('open', () => send({ type: 'hello', agentVersion: 'test', remoteShell }));
  socket.on('message', (data, isBinary) => {
    const frame = decodeFrame(ServerToAgent, data, isBinary);
    if (frame.type === 'hint') return onHint();
    if (frame.type === 'close') return void closedSessions.push(frame.session);
    if ((frame.type === 'open-terminal' || frame.type === 'open-exec') && !remoteShell) return send({ type: 'error', session: frame.session, code: 'refused', message: 'no remote shells here' });
    if (frame.type === 'open-terminal') return send({ type: 'opened', session: frame.session });
    if (frame.type === 'resize') return output(frame.session, `[size ${frame.cols}x${frame.rows}]`);
    if (frame.type === 'input') {
      const text = fromBase64(frame.data).toString();
      const exit = /^exit (\d+)/.exec(text);
      return exit ? send({ type: 'exit', session: frame.session, exitCode: Number(exit[1]) }) : output(frame.session, text.toUpperCase());
    }
    if (frame.component) return send({ type: 'error', session: frame.session, code: 'not-found', message: `no component "${frame.component}" runs on this device` });
    send({ type: 'opened', session: frame.session });
    output(frame.session, `${frame.command.join(' ')}\n`);
    send({ type: 'exit', session: frame.session, exitCode: frame.command.length });
  });
  return { socket, closedSessions, refusedWith };
}

type Harness = {
  app: FastifyInstance;
  store: Store;
  channels: DeviceChannels;
  url: string;
  pulls: Map<string, number>;
  agent(name: string, opts?: { remoteShell?: boolean; wait?: boolean }): Promise<FakeAgent>;
  close(): Promise<void>;
};

async function harness(): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'driftless-terminal-'));
  const db = openSqlite(':memory:');
  await migrateToLatest(db);
  const store = createSqlStore(db);
  const nowIso = new Date().toISOString();
  for (const [token, role] of [[ADMIN, 'admin'], [OPERATOR, 'operator'], [VIEWER, 'viewer']] as const) {
    await store.insertApiToken({ id: role, tokenHash: hashToken(token), role, description: role, createdAt: nowIso, expiresAt: null, revokedAt: null });
  }
  for (const name of ['dev-1', 'dev-2', 'dev-3', 'dev-offline']) await store.insertDevice(deviceRecord(name, nowIso));
  const sessionSecret = randomBytes(32);
  const { app, channels } = await assembleServer({ store, now: Date.now, signing: generateKeyPair(), sessionSecret, pollSeconds: 30, isOnline: () => true, recordings: createRecordings(join(dir, 'recordings')) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address() as { port: number };
  const url = `http://127.0.0.1:${address.port}`;
  const pulls = new Map<string, number>();
  const agents: FakeAgent[] = [];
  return {
    app,
    store,
    channels,
    url,
    pulls,
    async agent(name, { remoteShell = true, wait = true } = {}) {
      const agent = fakeAgent(url, issueSessionToken(sessionSecret, name, Date.now() + 3600_000), remoteShell, () => pulls.set(name, (pulls.get(name) ?? 0) + 1));
      agents.push(agent);
      if (wait) await until(`${name}'s channel`, () => channels.info(name) !== null);
      return agent;
    },
    async close() {
      for (const agent of agents) agent.socket.terminate();
      await app.close();
      await db.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function deviceRecord(name: string, nowIso: string): DeviceRecord {
  return { name, site: null, labels: { tier: 'store' }, facts: {}, publicKey: `key-${name}`, status: 'accepted', enrolledAt: nowIso, lastSeen: nowIso, appliedGeneration: 0 };
}

async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await sleep(10);
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** An operator's terminal socket: the frames it got, and how the upgrade was answered. */
function operator(h: Harness, device: string, token: string | null, query = '?cols=100&rows=30') {
  const socket = new WebSocket(`${h.url.replace('http', 'ws')}/v1/devices/${device}/terminal${query}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const frames: ServerToOperator[] = [];
  let closed = false;
  const refused = new Promise<{ status: number; body: { error: { code: string; message: string } } }>((resolve) => {
    socket.on('unexpected-response', (_request, response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(body) as { error: { code: string; message: string } } }));
    });
  });
  socket.on('error', () => undefined);
  socket.on('message', (data, isBinary) => frames.push(decodeFrame(ServerToOperator, data, isBinary)));
  socket.on('close', () => (closed = true));
  const output = () =>
    frames
      .filter((f): f is Extract<ServerToOperator, { type: 'output' }> => f.type === 'output')
      .map((f) => fromBase64(f.data).toString())
      .join('');
  return {
    socket,
    frames,
    refused,
    output,
    closed: () => closed,
    send: (frame: OperatorToServer) => socket.send(encodeFrame(frame)),
    type: (text: string) => socket.send(encodeFrame({ type: 'input', data: toBase64(text) })),
  };
}

async function exec(h: Harness, device: string, token: string, body: unknown) {
  const response = await fetch(`${h.url}/v1/devices/${device}/exec`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> & { error?: { code: string; message: string } } };
}

async function get(h: Harness, path: string, token: string) {
  const response = await fetch(`${h.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: response.status, text: await response.text() };
}

describe('remote terminal and exec through the server', () => {
  let h: Harness;
  let dev1: FakeAgent;
  before(async () => {
    h = await harness();
    dev1 = await h.agent('dev-1');
    await h.agent('dev-2', { remoteShell: false });
  });
  after(() => h.close());

  test('a terminal relays typing, output and resizes, ends with the shell status, and is recorded', async () => {
    const op = operator(h, 'dev-1', OPERATOR);
    await until('opened', () => op.frames.some((f) => f.type === 'opened'));
    const opened = op.frames.find((f) => f.type === 'opened') as { recording: string };
    op.type('hello');
    await until('echo', () => op.output().includes('HELLO'));
    op.send({ type: 'resize', cols: 90, rows: 20 });
    await until('resize', () => op.output().includes('[size 90x20]'));
    op.type('exit 4');
    await until('exit', () => op.closed());
    assert.deepEqual(op.frames.at(-1), { type: 'exit', exitCode: 4 });

    await until('the recording', async () => (await get(h, '/v1/recordings', OPERATOR)).text.includes(opened.recording));
    const listed = JSON.parse((await get(h, '/v1/recordings', OPERATOR)).text) as { id: string; kind: string; device: string; actor: string }[];
    const entry = listed.find((r) => r.id === opened.recording)!;
    assert.deepEqual({ kind: entry.kind, device: entry.device, actor: entry.actor }, { kind: 'terminal', device: 'dev-1', actor: 'token:operator' });
    await until('the recording to be complete', async () => (await get(h, `/v1/recordings/${opened.recording}`, OPERATOR)).text.includes('[size 90x20]'));
    const cast = (await get(h, `/v1/recordings/${opened.recording}`, OPERATOR)).text.trim().split('\n');
    const header = JSON.parse(cast[0]!) as { version: number; width: number; height: number };
    assert.deepEqual([header.version, header.width, header.height], [2, 100, 30]);
    const events = cast.slice(1).map((line) => JSON.parse(line) as [number, string, string]);
    assert.ok(events.some(([, type, text]) => type === 'o' && text === 'HELLO'));
    assert.ok(events.some(([, type, text]) => type === 'r' && text === '90x20'));
    assert.ok(events.every(([t], i) => typeof t === 'number' && (i === 0 || t >= events[i - 1]![0])), 'times grow');
  });

  test('one caller holds at most 8 remote sessions at once; a ninth is a 429 until one closes', async () => {
    const open = Array.from({ length: 8 }, () => operator(h, 'dev-1', OPERATOR));
    await until('eight terminals open', () => open.every((op) => op.frames.some((f) => f.type === 'opened')));
    const ninth = operator(h, 'dev-1', OPERATOR);
    const refusal = await ninth.refused;
    assert.equal(refusal.status, 429);
    assert.match(refusal.body.error.message, /at most 8/);
    assert.equal((await exec(h, 'dev-1', OPERATOR, { command: ['id'] })).status, 429, 'exec counts against the same limit');
    open[0]!.socket.close();
    await until('a turn to come back', async () => (await exec(h, 'dev-1', OPERATOR, { command: ['id'] })).status === 200);
    for (const op of open.slice(1)) op.socket.close();
  });

  test('the operator leaving hangs up the shell on the device', async () => {
    const op = operator(h, 'dev-1', OPERATOR);
    await until('opened', () => op.frames.some((f) => f.type === 'opened'));
    const closedBefore = dev1.closedSessions.length;
    op.socket.close();
    await until('the device to be told', () => dev1.closedSessions.length > closedBefore);
  });

  test('exec on the host returns output and exit code; bad input is a clear 400', async () => {
    const ran = await exec(h, 'dev-1', OPERATOR, { command: ['sh', '-c', 'echo out; exit 3'] });
    assert.equal(ran.status, 200, JSON.stringify(ran.body));
    assert.deepEqual({ exitCode: ran.body.exitCode, output: ran.body.output, truncated: ran.body.truncated, timedOut: ran.body.timedOut }, { exitCode: 3, output: 'sh -c echo out; exit 3\n', truncated: false, timedOut: false });
    assert.match(String(ran.body.recording), /^[0-9a-f-]{36}$/);
    const bad = await exec(h, 'dev-1', OPERATOR, { command: [] });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error!.message, /request body: command/);
    const missing = await exec(h, 'dev-1', OPERATOR, { command: ['ls'], component: 'web' });
    assert.equal(missing.status, 404);
    assert.match(missing.body.error!.message, /no component "web" runs on this device/);
  });

  test('a viewer token, or none, is refused before any session opens', async () => {
    const viewer = operator(h, 'dev-1', VIEWER);
    const answer = await viewer.refused;
    assert.equal(answer.status, 403);
    assert.match(answer.body.error.message, /operator role/);
    assert.equal((await operator(h, 'dev-1', null).refused).status, 401);
    assert.equal((await exec(h, 'dev-1', VIEWER, { command: ['id'] })).status, 403);
    assert.equal((await get(h, '/v1/recordings', VIEWER)).status, 403);
  });

  test('a device that refuses remote shells by local configuration is refused, saying so', async () => {
    const answer = await operator(h, 'dev-2', OPERATOR).refused;
    assert.equal(answer.status, 403);
    assert.match(answer.body.error.message, /refuses remote shells.*--no-remote-shell/);
    const ran = await exec(h, 'dev-2', OPERATOR, { command: ['id'] });
    assert.equal(ran.status, 403);
    assert.match(ran.body.error!.message, /refuses remote shells/);
  });

  test('an unknown device is 404; a device without a channel is 503', async () => {
    assert.equal((await operator(h, 'nope', OPERATOR).refused).status, 404);
    const offline = await operator(h, 'dev-offline', OPERATOR).refused;
    assert.equal(offline.status, 503);
    assert.match(offline.body.error.message, /no channel open/);
    assert.equal((await exec(h, 'dev-offline', OPERATOR, { command: ['id'] })).status, 503);
  });

  test('a desired-state change hints the device to pull now', async () => {
    const before = h.pulls.get('dev-1') ?? 0;
    const manifest = { apiVersion: 'driftless/v1', kind: 'Deployment', metadata: { name: 'web' }, spec: { selector: { matchLabels: { tier: 'store' } }, template: { version: '1', components: [{ name: 'web', image: 'registry.example/web:1' }] } } };
    const response = await fetch(`${h.url}/v1/apply`, { method: 'POST', headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/json' }, body: JSON.stringify({ resources: [manifest] }) });
    const applied = await response.text();
    assert.equal(response.status, 200, applied);
    await until('a hint', () => (h.pulls.get('dev-1') ?? 0) > before);
  });

  test('other-tenant and revoked: another tenant does not see the device; a revoked one is cut off at once and refused', async () => {
    const tenant = await fetch(`${h.url}/v1/tenants`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'other-org' }) });
    const created = await tenant.text();
    assert.equal(tenant.status, 201, created);
    const otherAdmin = (JSON.parse(created) as { admin: { token: string } }).admin.token;
    assert.equal((await operator(h, 'dev-1', otherAdmin).refused).status, 404);
    assert.equal((await exec(h, 'dev-1', otherAdmin, { command: ['id'] })).status, 404);

    await h.agent('dev-3');
    const op = operator(h, 'dev-3', OPERATOR);
    await until('opened', () => op.frames.some((f) => f.type === 'opened'));
    const revoke = await fetch(`${h.url}/v1/devices/dev-3/revoke`, { method: 'POST', headers: { authorization: `Bearer ${OPERATOR}` } });
    const revoked = await revoke.text();
    assert.equal(revoke.status, 200, revoked);
    await until('the open session to end', () => op.closed());
    assert.equal(op.frames.at(-1)?.type, 'error');
    assert.equal(h.channels.info('dev-3'), null);
    const again = await operator(h, 'dev-3', OPERATOR).refused;
    assert.equal(again.status, 403);
    assert.match(again.body.error.message, /revoked/);
    // Its agent's next channel is refused at the door.
    const retry = await h.agent('dev-3', { wait: false });
    assert.equal(await retry.refusedWith, 403);
    assert.equal(h.channels.info('dev-3'), null);
  });
});
