import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { gzipSync } from 'node:zlib';
import { requestJson, tapHttpRequests, type TappedRequest } from './http-tap.ts';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.ts';
import { waitUntil } from './wait.ts';

// The latency proxy with real sockets on loopback: bytes arrive intact and in order in both
// directions, no earlier than the latency, a slow reader bounds what the proxy holds, a paused
// direction holds its data until resumed, and a reset reaches both ends.

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A target that hands each accepted socket to the test. */
async function startTarget(): Promise<{ server: Server; port: number; next(): Promise<Socket> }> {
  const waiting: ((s: Socket) => void)[] = [];
  const ready: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    const take = waiting.shift();
    if (take) take(socket);
    else ready.push(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    next: () => (ready.length > 0 ? Promise.resolve(ready.shift()!) : new Promise((resolve) => waiting.push(resolve))),
  };
}

function readAll(socket: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
  });
}

async function dial(proxy: TcpProxy): Promise<Socket> {
  const socket = connect({ host: proxy.host, port: proxy.port, allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/** Writes `data` in uneven pieces, honouring backpressure, then ends. */
async function send(socket: Socket, data: Buffer): Promise<void> {
  for (let at = 0; at < data.length; ) {
    const size = 1 + Math.floor(Math.random() * 70_000);
    const piece = data.subarray(at, at + size);
    at += piece.length;
    if (!socket.write(piece)) await new Promise((resolve) => socket.once('drain', resolve));
  }
  socket.end();
}

describe('tcp proxy', () => {
  let target: Awaited<ReturnType<typeof startTarget>>;
  const proxies: TcpProxy[] = [];
  const open = async (latencyMs: number, maxQueuedBytes?: number) => {
    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: target.port }, latencyMs, ...(maxQueuedBytes ? { maxQueuedBytes } : {}) });
    proxies.push(proxy);
    return proxy;
  };

  before(async () => {
    target = await startTarget();
  });
  after(async () => {
    for (const p of proxies) await p.close();
    target.server.close();
  });

  it('carries bytes intact and in order both ways, each chunk no earlier than the latency', async () => {
    const proxy = await open(150);
    const up = randomBytes(3 * 1024 * 1024);
    const down = randomBytes(2 * 1024 * 1024 + 17);
    const started = Date.now();
    const client = await dial(proxy);
    const server = await target.next();
    const firstByte = new Promise<number>((resolve) => server.once('data', () => resolve(Date.now())));
    const serverGot = readAll(server);
    const clientGot = readAll(client);
    await Promise.all([send(client, up), send(server, down)]);
    const [atServer, atClient] = await Promise.all([serverGot, clientGot]);
    assert.equal(atServer.length, up.length);
    assert.equal(sha(atServer), sha(up), 'client → server bytes intact and in order');
    assert.equal(atClient.length, down.length);
    assert.equal(sha(atClient), sha(down), 'server → client bytes intact and in order');
    assert.ok((await firstByte) - started >= 150, 'the first byte waited for the latency');
    const stats = proxy.stats();
    assert.equal(stats.bytes.up, up.length);
    assert.equal(stats.bytes.down, down.length);
    await waitUntil('the relayed connection to close', () => proxy.stats().open === 0);
  });

  it('a slow reader bounds what the proxy holds', async () => {
    const proxy = await open(0, 256 * 1024);
    const data = randomBytes(16 * 1024 * 1024);
    const client = await dial(proxy);
    const server = await target.next();
    server.pause();
    const sending = send(client, data);
    await sleep(300); // the reader is stalled: the sender must be held back, not buffered without bound
    assert.ok(proxy.stats().maxQueued <= 256 * 1024 + 128 * 1024, `held ${proxy.stats().maxQueued} bytes`);
    const got = readAll(server);
    server.resume();
    await sending;
    assert.equal(sha(await got), sha(data));
    assert.ok(proxy.stats().maxQueued <= 256 * 1024 + 128 * 1024, `held ${proxy.stats().maxQueued} bytes`);
  });

  it('a paused direction holds its data until resumed; the other keeps flowing', async () => {
    const proxy = await open(0);
    const client = await dial(proxy);
    const server = await target.next();
    proxy.pause('down');
    const received: string[] = [];
    client.setEncoding('utf8').on('data', (s: string) => received.push(s));
    server.write('answer');
    const upArrived = new Promise<string>((resolve) => server.setEncoding('utf8').once('data', resolve));
    client.write('request');
    assert.equal(await upArrived, 'request', 'the other direction flows');
    await sleep(300);
    assert.deepEqual(received, [], 'nothing comes back while paused');
    proxy.resume('down');
    await waitUntil('the held answer to arrive', () => received.join('') === 'answer');
    client.destroy();
    server.destroy();
  });

  it('a tap sees each chunk as it goes through, in time to hold back the answer to it', async () => {
    const proxy = await open(50);
    const client = await dial(proxy);
    const server = await target.next();
    const seen: string[] = [];
    const untap = proxy.tap((direction, chunk) => {
      seen.push(`${direction}:${chunk.toString('utf8')}`);
      if (direction === 'up' && chunk.includes('POST /upload')) proxy.pause('down');
    });
    const received: string[] = [];
    client.setEncoding('utf8').on('data', (s: string) => received.push(s));
    server.setEncoding('utf8').on('data', (s: string) => {
      if (s.includes('POST /upload')) server.write('ack 1');
    });
    client.write('POST /upload');
    await waitUntil('the request to reach the target', () => seen.includes('up:POST /upload'));
    await sleep(300);
    assert.deepEqual(received, [], 'the answer is held');
    untap();
    proxy.resume();
    await waitUntil('the held answer to arrive', () => received.join('') === 'ack 1');
    assert.deepEqual(seen, ['up:POST /upload'], 'the tap saw the request; removed, it saw no more');
    client.destroy();
    server.destroy();
  });

  it('a reset reaches both ends', async () => {
    const proxy = await open(0);
    const client = await dial(proxy);
    const server = await target.next();
    const errors = (s: Socket) => new Promise<string>((resolve) => {
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      s.once('close', () => resolve('closed'));
    });
    const clientEnd = errors(client);
    const serverEnd = errors(server);
    proxy.reset();
    assert.equal(await clientEnd, 'ECONNRESET');
    assert.equal(await serverEnd, 'ECONNRESET');
    await waitUntil('the proxy to forget the connection', () => proxy.stats().open === 0);
  });

  it('an HTTP tap reports each request with its body: keep-alive, gzip, chunked', async () => {
    const http = createHttpServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: (http.address() as AddressInfo).port }, latencyMs: 20 });
    proxies.push(proxy);
    const tapped: TappedRequest[] = [];
    const untap = tapHttpRequests(proxy, (r) => tapped.push(r));
    const batch = { records: Array.from({ length: 3000 }, (_, i) => ({ seq: i + 1, line: `line ${i + 1}` })), dropped: 0 };
    for (let i = 0; i < 2; i++) {
      const answer = await fetch(`${proxy.url}/v1/device/telemetry`, { method: 'POST', headers: { 'content-encoding': 'gzip' }, body: gzipSync(JSON.stringify(batch)) });
      assert.equal(await answer.text(), 'ok');
    }
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest({ host: proxy.host, port: proxy.port, method: 'PUT', path: '/chunked' }, (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.write('{"a":');
      req.end('1}');
    });
    untap();
    http.close();
    http.closeAllConnections();
    assert.deepEqual(tapped.map((r) => `${r.method} ${r.path}`), ['POST /v1/device/telemetry', 'POST /v1/device/telemetry', 'PUT /chunked']);
    assert.deepEqual(requestJson(tapped[0]!), batch);
    assert.deepEqual(requestJson(tapped[1]!), batch);
    assert.deepEqual(requestJson(tapped[2]!), { a: 1 });
  });
});
