import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { decodeFrame, encodeFrame, ServerToAgent, type AgentToServer } from '../protocol/channel.ts';
import { generateKeyPair, loadPrivateKey, sessionChallenge, signText } from '../protocol/signing.ts';
import { waitFor } from '../../test/support/wait.ts';
import { startServer, type RunningServer } from './server.ts';

// A browser cannot set headers on a WebSocket: the dashboard offers its token as the subprotocol
// `driftless.bearer.<token>` beside `driftless.terminal`. Through a real server on a free port
// with real WebSockets: the token opens the terminal for the roles allowed, is refused otherwise,
// and is never echoed back as the chosen subprotocol.

const ADMIN = 'dla_ws-auth-admin-token';
const ENROLL = 'dle_ws-auth-enroll';
const BEARER = 'driftless.bearer.';

type Outcome =
  | { kind: 'open'; protocol: string; header: string | undefined; firstFrame: string | null }
  | { kind: 'refused'; status: number; header: string | undefined; body: string }
  | { kind: 'error'; message: string };

/** Opens a WebSocket and reports how the upgrade went; closes it again. */
function connect(url: string, protocols: string[], headers: Record<string, string> = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, protocols, { headers });
    let header: string | undefined;
    socket.on('upgrade', (response: IncomingMessage) => {
      header = response.headers['sec-websocket-protocol'] as string | undefined;
    });
    socket.on('open', () => {
      const protocol = socket.protocol;
      // The first frame, if the server sends one at once (a device without a channel gets an error frame), or the close.
      socket.once('message', (data) => {
        resolve({ kind: 'open', protocol, header, firstFrame: String(data) });
        socket.close();
      });
      socket.once('close', () => resolve({ kind: 'open', protocol, header, firstFrame: null }));
    });
    socket.on('unexpected-response', (_request, response) => {
      const chunks: Buffer[] = [];
      response.on('data', (c: Buffer) => chunks.push(c));
      response.on('end', () => resolve({ kind: 'refused', status: response.statusCode ?? 0, header: response.headers['sec-websocket-protocol'] as string | undefined, body: Buffer.concat(chunks).toString() }));
    });
    socket.on('error', (error) => resolve({ kind: 'error', message: error.message }));
  });
}

/** A device enrolled through the API whose channel is open: it says hello and opens every terminal asked of it. */
async function deviceChannel(url: string, name: string): Promise<WebSocket> {
  const post = (path: string, body: unknown, token?: string) =>
    fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
  const keys = generateKeyPair();
  const enrolled = await post('/v1/enroll', { token: ENROLL, name, publicKey: keys.publicKey });
  assert.equal(enrolled.status, 201, await enrolled.text());
  // Accepted, whatever the enrollment token's rule (answered 409 or the like when it already is).
  await post(`/v1/devices/${name}/accept`, {}, ADMIN);
  const timestamp = new Date().toISOString();
  const session = await post('/v1/device/session', { device: name, timestamp, signature: signText(loadPrivateKey(keys.privateKey), sessionChallenge(name, timestamp)) });
  assert.equal(session.status, 200);
  const { token } = (await session.json()) as { token: string };
  const socket = new WebSocket(`${url.replace('http', 'ws')}/v1/device/channel`, { headers: { authorization: `Bearer ${token}` } });
  const send = (frame: AgentToServer) => socket.send(encodeFrame(frame));
  socket.on('error', () => undefined);
  socket.on('message', (data, isBinary) => {
    const frame = decodeFrame(ServerToAgent, data, isBinary);
    if (frame.type === 'open-terminal') send({ type: 'opened', session: frame.session });
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('unexpected-response', (_request, response) => reject(new Error(`device channel refused: ${response.statusCode}`)));
  });
  send({ type: 'hello', agentVersion: 'test', remoteShell: true });
  return socket;
}

describe('WebSocket authentication by subprotocol', () => {
  let server: RunningServer;
  let dir: string;
  const tokens = { operator: '', viewer: '' };
  let terminal: string;
  let agent: WebSocket;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'driftless-ws-auth-'));
    server = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0, adminToken: ADMIN, enrollToken: ENROLL, dashboardDir: null });
    for (const role of ['operator', 'viewer'] as const) {
      const made = await fetch(`${server.url}/v1/tokens`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ role }) });
      assert.equal(made.status, 201, await made.clone().text());
      tokens[role] = ((await made.json()) as { token: string }).token;
    }
    agent = await deviceChannel(server.url, 'dev-1');
    terminal = `${server.url.replace('http', 'ws')}/v1/devices/dev-1/terminal?cols=80&rows=24`;
    // The terminal opens once the device's channel is registered: the known way in, a header, says when.
    await waitFor('dev-1’s channel', () => connect(terminal, ['driftless.terminal'], { authorization: `Bearer ${ADMIN}` }), (o) => o.kind === 'open');
  });
  after(async () => {
    agent.terminate();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an operator’s token as a subprotocol opens the terminal; the protocol chosen is driftless.terminal', async () => {
    for (const token of [tokens.operator, ADMIN]) {
      const outcome = await connect(terminal, ['driftless.terminal', BEARER + token]);
      assert.equal(outcome.kind, 'open', JSON.stringify(outcome));
      if (outcome.kind !== 'open') continue;
      assert.equal(outcome.protocol, 'driftless.terminal');
      assert.equal(outcome.header, 'driftless.terminal');
      assert.equal((JSON.parse(String(outcome.firstFrame)) as { type: string }).type, 'opened', 'the device’s terminal opened');
      assert.ok(!String(outcome.firstFrame).includes(token), 'the token is not in the first frame');
    }
  });

  test('the bearer subprotocol offered first is still not the one chosen', async () => {
    const outcome = await connect(terminal, [BEARER + tokens.operator, 'driftless.terminal']);
    assert.equal(outcome.kind, 'open', JSON.stringify(outcome));
    if (outcome.kind === 'open') assert.equal(outcome.protocol, 'driftless.terminal');
  });

  test('a wrong token is refused with 401; a viewer’s with 403; neither echoes the token', async () => {
    for (const [token, status] of [['dla_not-a-real-token', 401], [tokens.viewer, 403]] as const) {
      const outcome = await connect(terminal, ['driftless.terminal', BEARER + token]);
      assert.equal(outcome.kind, 'refused', JSON.stringify(outcome));
      if (outcome.kind !== 'refused') continue;
      assert.equal(outcome.status, status);
      assert.ok(!outcome.header?.includes(token), 'no Sec-WebSocket-Protocol carrying the token');
      assert.ok(!outcome.body.includes(token), 'the refusal does not repeat the token');
    }
  });

  test('no token at all, an empty bearer subprotocol, or one without the exact prefix: 401', async () => {
    for (const protocols of [['driftless.terminal'], ['driftless.terminal', BEARER], ['driftless.terminal', BEARER.slice(0, -1) + ADMIN]]) {
      const outcome = await connect(terminal, protocols);
      assert.equal(outcome.kind, 'refused', `${protocols}: ${JSON.stringify(outcome)}`);
      if (outcome.kind === 'refused') assert.equal(outcome.status, 401);
    }
  });

  test('only the bearer subprotocol offered: never echoed back', async () => {
    const outcome = await connect(terminal, [BEARER + tokens.operator]);
    // The server picks none of the offered (the only one is a token): the client, which asked for a subprotocol, gives up.
    assert.equal(outcome.kind, 'error', JSON.stringify(outcome));
    if (outcome.kind === 'error') assert.match(outcome.message, /no subprotocol/);
  });

  test('an Authorization header, when present, is the credential: a bad header is not rescued by a good subprotocol', async () => {
    const outcome = await connect(terminal, ['driftless.terminal', BEARER + tokens.operator], { authorization: 'Bearer dla_wrong' });
    assert.equal(outcome.kind, 'refused', JSON.stringify(outcome));
    if (outcome.kind === 'refused') assert.equal(outcome.status, 401);
    const header = await connect(terminal, ['driftless.terminal'], { authorization: `Bearer ${tokens.operator}` });
    assert.equal(header.kind, 'open', JSON.stringify(header));
  });

  test('a plain HTTP request with a bearer subprotocol header is not authenticated by it', async () => {
    const reply = await fetch(`${server.url}/v1/whoami`, { headers: { 'sec-websocket-protocol': `driftless.terminal, ${BEARER}${ADMIN}` } });
    assert.equal(reply.status, 401);
    const ok = await fetch(`${server.url}/v1/whoami`, { headers: { authorization: `Bearer ${tokens.operator}` } });
    assert.deepEqual(((await ok.json()) as { role: string }).role, 'operator');
  });
});
