import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import type { FastifyRequest } from 'fastify';
import WebSocket, { WebSocketServer } from 'ws';
import { RELAYED_HEADER, relayTerminalToReplica } from './replica-relay.ts';

// The relay between replicas over real sockets: an operator's socket on one side, a stand-in for the
// replica holding the device's channel (a plain HTTP + WebSocket server) on the other.

const servers: Server[] = [];
const sockets: WebSocket[] = [];
after(async () => {
  for (const socket of sockets) socket.terminate();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

async function listen(server: Server): Promise<string> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The holding replica: echoes frames back, upper-cased, and remembers the upgrade request. */
async function holder(refuse?: { status: number; body: string }): Promise<{ url: string; seen: IncomingMessage[] }> {
  const seen: IncomingMessage[] = [];
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (offered) => [...offered][0] ?? false });
  const server = createServer();
  server.on('upgrade', (request, socket, head) => {
    seen.push(request);
    if (refuse) {
      socket.end(`HTTP/1.1 ${refuse.status} Refused\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(refuse.body)}\r\n\r\n${refuse.body}`);
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      sockets.push(ws);
      ws.on('message', (data) => ws.send(data.toString().toUpperCase()));
      ws.send('{"type":"opened"}');
    });
  });
  return { url: `${await listen(server)}/v1/devices/pos-1/terminal?cols=80&rows=24`, seen };
}

/** The replica the operator reached: relays every socket it accepts to `target`. */
async function relaying(target: string): Promise<string> {
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (offered) => [...offered].find((p) => !p.startsWith('driftless.bearer.')) ?? false });
  const server = createServer();
  server.on('upgrade', (request, socket, head) => {
    wss.handleUpgrade(request, socket, head, (ws) => {
      sockets.push(ws);
      relayTerminalToReplica(ws, target, { headers: request.headers } as unknown as FastifyRequest);
    });
  });
  return listen(server);
}

function operator(url: string): Promise<{ frames: string[]; closed: Promise<number> }> {
  const socket = new WebSocket(url, ['driftless.terminal', 'driftless.bearer.secret-token'], { headers: { authorization: 'Bearer header-token' } });
  sockets.push(socket);
  const frames: string[] = [];
  socket.on('message', (data) => {
    frames.push(data.toString());
    if (frames.length === 1) socket.send('{"type":"input","data":"aGk="}');
  });
  const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve({ frames, closed }));
    socket.once('error', reject);
  });
}

describe('relaying a terminal to the replica holding the device', () => {
  test('frames pass both ways; the operator\'s credentials and subprotocols go along, marked as relayed', async () => {
    const held = await holder();
    const { frames } = await operator(await relaying(held.url));
    for (let i = 0; i < 100 && frames.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(frames, ['{"type":"opened"}', '{"TYPE":"INPUT","DATA":"AGK="}']);
    const [upgrade] = held.seen;
    assert.equal(upgrade?.headers.authorization, 'Bearer header-token');
    assert.equal(upgrade?.headers[RELAYED_HEADER], '1');
    assert.deepEqual(String(upgrade?.headers['sec-websocket-protocol']).split(/, */), ['driftless.terminal', 'driftless.bearer.secret-token']);
  });

  test('refused by the holding replica before the upgrade: the operator gets its words as an error frame, then the close', async () => {
    const held = await holder({ status: 403, body: JSON.stringify({ error: { code: 'forbidden', message: 'device "pos-1" refuses remote shells' } }) });
    const { frames, closed } = await operator(await relaying(held.url));
    assert.equal(await closed, 1011);
    assert.deepEqual(frames.map((f) => JSON.parse(f) as unknown), [{ type: 'error', code: 'unavailable', message: 'device "pos-1" refuses remote shells' }]);
  });

  test('a holding replica that cannot be reached: an error frame naming it, then the close', async () => {
    const gone = await listen(createServer());
    await new Promise((resolve) => servers.pop()!.close(resolve));
    const { frames, closed } = await operator(await relaying(`${gone}/v1/devices/pos-1/terminal`));
    assert.equal(await closed, 1011);
    assert.match((JSON.parse(frames[0]!) as { message: string }).message, /^the server replica holding the device's channel cannot be reached: .*ECONNREFUSED/);
  });
});
