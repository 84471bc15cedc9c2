import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ApiError, createApiClient, encodeName, queryString } from './api-client.ts';

/** A request as the server saw it. */
type Seen = { method: string; url: string; headers: IncomingHttpHeaders; body: string };
/** What the server answers on a path. */
type Reply = { status: number; body: string; type?: string };

const json = (status: number, value: unknown): Reply => ({ status, body: JSON.stringify(value), type: 'application/json' });
const REPLIES: Record<string, Reply> = {
  '/v1/devices': json(200, { items: [{ name: 'dev-1' }], total: 1 }),
  '/v1/empty': { status: 204, body: '' },
  '/v1/rollouts/r1/pause': json(200, { state: 'paused' }),
  '/v1/missing': json(404, { error: { code: 'not-found', message: 'device "dev-9" does not exist' } }),
  '/v1/conflict': json(409, { error: { code: 'conflict', message: 'the rollout is already paused' } }),
  '/v1/no-code': json(400, { error: { message: 'bad selector' } }),
  '/v1/whoami': json(401, { error: { code: 'unauthorized', message: 'the token is not valid' } }),
  '/v1/proxy-down': { status: 502, body: '<html><body><h1>502 Bad Gateway</h1></body></html>', type: 'text/html' },
  '/v1/unavailable': { status: 503, body: 'Service Unavailable', type: 'text/plain' },
  '/v1/plain-500': { status: 500, body: '  something broke inside  \n', type: 'text/plain' },
  '/v1/empty-500': { status: 500, body: '' },
  '/v1/long-500': { status: 500, body: 'x'.repeat(1000), type: 'text/plain' },
};

let server: Server;
let base: string;
const seen: Seen[] = [];

/** The browser's fetch resolves the client's paths against the page; here, against the test server. */
const fetchFrom = (origin: () => string): typeof fetch => (input, init) => fetch(new URL(String(input), origin()), init);

before(async () => {
  server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      seen.push({ method: request.method!, url: request.url!, headers: request.headers, body });
      const reply = REPLIES[new URL(request.url!, 'http://x').pathname] ?? json(404, { error: { code: 'not-found', message: 'no such route' } });
      response.writeHead(reply.status, reply.type ? { 'content-type': reply.type } : {});
      response.end(reply.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const lastSeen = () => seen.at(-1)!;
const client = (token: string | null = 'tok-1', onUnauthorized: (error: ApiError) => void = () => assert.fail('onUnauthorized called')) =>
  createApiClient({ token: () => token, onUnauthorized, fetch: fetchFrom(() => base) });

/** The ApiError a call rejects with. */
async function failure(call: Promise<unknown>): Promise<ApiError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof ApiError, `not an ApiError: ${String(error)}`);
    return error;
  }
  assert.fail('the call succeeded');
}

describe('createApiClient', () => {
  test('GET returns the parsed body and sends the bearer token', async () => {
    assert.deepEqual(await client().get('/v1/devices?limit=5'), { items: [{ name: 'dev-1' }], total: 1 });
    const request = lastSeen();
    assert.equal(request.method, 'GET');
    assert.equal(request.url, '/v1/devices?limit=5');
    assert.equal(request.headers.authorization, 'Bearer tok-1');
    assert.equal(request.headers.accept, 'application/json');
    assert.equal(request.headers['content-type'], undefined);
    assert.equal(request.body, '');
  });

  test('the token is read at each call, and none is sent without one', async () => {
    let token: string | null = 'first';
    const api = createApiClient({ token: () => token, onUnauthorized: () => assert.fail('onUnauthorized called'), fetch: fetchFrom(() => base) });
    await api.get('/v1/devices');
    assert.equal(lastSeen().headers.authorization, 'Bearer first');
    token = null;
    await api.get('/v1/devices');
    assert.equal(lastSeen().headers.authorization, undefined);
  });

  test('POST sends its body as JSON, and an empty object when there is none', async () => {
    assert.deepEqual(await client().post('/v1/rollouts/r1/pause', { reason: 'health checks fail', note: 'é' }), { state: 'paused' });
    assert.equal(lastSeen().method, 'POST');
    assert.equal(lastSeen().headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(lastSeen().body), { reason: 'health checks fail', note: 'é' });
    await client().post('/v1/rollouts/r1/pause');
    assert.equal(lastSeen().body, '{}');
  });

  test('an empty answer is null', async () => {
    assert.equal(await client().get('/v1/empty'), null);
  });

  test('the server’s { error: { code, message } } becomes an ApiError with its words and status', async () => {
    const missing = await failure(client().get('/v1/missing'));
    assert.equal(missing.name, 'ApiError');
    assert.equal(missing.status, 404);
    assert.equal(missing.code, 'not-found');
    assert.equal(missing.message, 'device "dev-9" does not exist');
    assert.equal(missing.unreachable, false);

    const conflict = await failure(client().post('/v1/conflict', {}));
    assert.deepEqual([conflict.status, conflict.code, conflict.message], [409, 'conflict', 'the rollout is already paused']);

    const noCode = await failure(client().get('/v1/no-code'));
    assert.deepEqual([noCode.status, noCode.code, noCode.message], [400, '400', 'bad selector']);
  });

  test('a 401 hands the error to onUnauthorized and still rejects with it', async () => {
    const handed: ApiError[] = [];
    const error = await failure(client('expired', (e) => handed.push(e)).get('/v1/whoami'));
    assert.equal(error.status, 401);
    assert.equal(error.message, 'the token is not valid');
    assert.deepEqual(handed, [error]);
  });

  test('no other error calls onUnauthorized', async () => {
    for (const path of ['/v1/missing', '/v1/conflict', '/v1/proxy-down', '/v1/plain-500']) await failure(client().get(path)); // client() fails the test if it is called
  });

  test('a proxy’s page for 502 or 503 reads "cannot be reached" and is worth retrying', async () => {
    for (const [path, status] of [['/v1/proxy-down', 502], ['/v1/unavailable', 503]] as const) {
      const error = await failure(client().get(path));
      assert.equal(error.status, status);
      assert.equal(error.code, String(status));
      assert.equal(error.message, 'The Driftless server cannot be reached.');
      assert.equal(error.unreachable, true);
    }
  });

  test('another error without the server’s body shows its text, trimmed and cut, or the status', async () => {
    const plain = await failure(client().get('/v1/plain-500'));
    assert.deepEqual([plain.status, plain.message, plain.unreachable], [500, 'something broke inside', false]);
    assert.equal((await failure(client().get('/v1/empty-500'))).message, 'HTTP 500');
    assert.equal((await failure(client().get('/v1/long-500'))).message, 'x'.repeat(200));
  });

  test('a server that is not there is status 0, unreachable', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const api = createApiClient({ token: () => 'tok-1', onUnauthorized: () => assert.fail('onUnauthorized called'), fetch: fetchFrom(() => origin) });
    for (const call of [api.get('/v1/devices'), api.post('/v1/rollouts/r1/pause')]) {
      const error = await failure(call);
      assert.equal(error.status, 0);
      assert.equal(error.code, 'unreachable');
      assert.equal(error.message, 'The Driftless server cannot be reached.');
      assert.equal(error.unreachable, true);
    }
  });

  test('a call its caller aborted rejects with the abort, not as unreachable', async () => {
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(client().get('/v1/devices', controller.signal), (error: unknown) => !(error instanceof ApiError) && (error as Error).name === 'AbortError');
  });
});

describe('queryString', () => {
  test('leaves out empty filters, keeps zero and false-looking strings', () => {
    assert.equal(queryString({ site: 'lyon', state: '', label: null, cursor: undefined, limit: 50, offset: 0, q: 'false' }), '?site=lyon&limit=50&offset=0&q=false');
  });

  test('nothing to filter on is no query string at all', () => {
    assert.equal(queryString({}), '');
    assert.equal(queryString({ site: '', state: null, cursor: undefined }), '');
  });

  test('encodes values so they come back as given', () => {
    const text = queryString({ selector: 'site=lyon,role in (edge, gw)', name: 'a&b=c#d', q: 'é ü' });
    assert.ok(text.startsWith('?'));
    const back = new URLSearchParams(text.slice(1));
    assert.deepEqual(Object.fromEntries(back), { selector: 'site=lyon,role in (edge, gw)', name: 'a&b=c#d', q: 'é ü' });
  });
});

describe('encodeName', () => {
  test('a name is one path segment', () => {
    assert.equal(encodeName('dev-1'), 'dev-1');
    assert.equal(encodeName('a/b c?#'), 'a%2Fb%20c%3F%23');
  });
});
