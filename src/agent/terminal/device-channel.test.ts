import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocketServer, type WebSocket } from 'ws';
import { AgentToServer, decodeFrame, encodeFrame, fromBase64, type ServerToAgent } from '../../protocol/channel.ts';
import { startDeviceChannel, type AgentLink } from './device-channel.ts';

// The agent's channel against a plain WebSocket server standing in for the management plane:
// it says hello, turns hints into pulls, reopens after a loss, renews a refused session token,
// and serves sessions (host exec here; the PTY is exercised end to end in test/e2e).

const SESSION = 'bbbbbbbb-0000-4000-8000-000000000001';

type Peer = { socket: WebSocket; frames: AgentToServer[]; authorization: string | undefined };

describe('device channel (agent side)', () => {
  let server: Server;
  let url: string;
  const peers: Peer[] = [];
  /** Authorization values the server refuses with 401 before upgrading. */
  const refusedTokens = new Set<string>();

  before(async () => {
    server = createServer();
    const wss = new WebSocketServer({ noServer: true });
    server.on('upgrade', (request, socket, head) => {
      if (request.url !== '/v1/device/channel' || refusedTokens.has(request.headers.authorization ?? '')) {
        socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      wss.handleUpgrade(request, socket, head, (ws) => {
        const peer: Peer = { socket: ws, frames: [], authorization: request.headers.authorization };
        ws.on('message', (data, isBinary) => peer.frames.push(decodeFrame(AgentToServer, data, isBinary)));
        peers.push(peer);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  async function until(what: string, check: () => boolean): Promise<void> {
    for (let i = 0; i < 500 && !check(); i++) await sleep(10);
    assert.ok(check(), `timed out waiting for ${what}`);
  }

  test('hello, hints, reconnection, token renewal and a session', async () => {
    let pulls = 0;
    let tokens = 0;
    const renewals: boolean[] = [];
    const link: AgentLink = {
      serverUrl: url,
      sessionToken: async (renew) => {
        renewals.push(renew);
        return `token-${++tokens}`;
      },
      pullNow: () => pulls++,
      components: () => [],
      drivers: {},
    };
    // The first token is refused (a server that forgot its sessions): the agent must ask for a new one.
    refusedTokens.add('Bearer token-1');
    const channel = startDeviceChannel(link, { remoteShell: () => true, agentVersion: '9.9.9', backoff: { baseMs: 20, capMs: 50, jitter: false } });
    try {
      await until('a connection', () => peers.length === 1 && peers[0]!.frames.length > 0);
      assert.deepEqual(renewals.slice(0, 2), [false, true]);
      assert.equal(peers[0]!.authorization, 'Bearer token-2');
      assert.deepEqual(peers[0]!.frames[0], { type: 'hello', agentVersion: '9.9.9', remoteShell: true });
      // Connecting pulls once (hints sent while away are lost), and every hint pulls again.
      await until('the catch-up pull', () => pulls === 1);
      peers[0]!.socket.send(encodeFrame({ type: 'hint', what: 'desired-state' } satisfies ServerToAgent));
      await until('the hinted pull', () => pulls === 2);

      const open: ServerToAgent = { type: 'open-exec', session: SESSION, command: ['sh', '-c', 'printf hi; exit 5'], timeoutSeconds: 5 };
      peers[0]!.socket.send(encodeFrame(open));
      await until('the exit', () => peers[0]!.frames.some((f) => f.type === 'exit'));
      const output = peers[0]!.frames.flatMap((f) => (f.type === 'output' ? [fromBase64(f.data).toString()] : [])).join('');
      assert.equal(output, 'hi');
      assert.deepEqual(peers[0]!.frames.at(-1), { type: 'exit', session: SESSION, exitCode: 5 });

      // A frame that is not the protocol closes the channel; the agent opens a new one.
      peers[0]!.socket.send('{"type":"rm -rf"}');
      await until('a second connection', () => peers.length === 2 && peers[1]!.frames.length > 0);
      // The server dropping it is the same.
      peers[1]!.socket.terminate();
      await until('a third connection', () => peers.length === 3 && peers[2]!.frames.length > 0);
    } finally {
      await channel.stop();
    }
    const count = peers.length;
    await sleep(150);
    assert.equal(peers.length, count, 'a stopped channel stays closed');
  });

  test('a device that refuses remote shells says so in its hello', async () => {
    const before = peers.length;
    const channel = startDeviceChannel(
      { serverUrl: url, sessionToken: async () => 'token-x', pullNow: () => undefined, components: () => [], drivers: {} },
      { remoteShell: () => false, agentVersion: '1', backoff: { baseMs: 20, capMs: 50, jitter: false } },
    );
    try {
      await until('hello', () => peers.length > before && peers.at(-1)!.frames.length > 0);
      assert.deepEqual(peers.at(-1)!.frames[0], { type: 'hello', agentVersion: '1', remoteShell: false });
    } finally {
      await channel.stop();
    }
  });
});
