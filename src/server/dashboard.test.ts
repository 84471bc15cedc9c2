import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { startInProcessServer, type InProcessServer } from '../../test/support/in-process-server.ts';
import { DASHBOARD_CSP } from './dashboard.ts';

// The built dashboard served by the assembled server (in process), from a directory the test
// writes: pages fall back to index.html, bundles are cached for ever, API paths stay JSON, and
// nothing outside the directory is ever served.

const VIEWER = 'viewer-token';
const START = Date.parse('2025-06-02T10:00:00.000Z');
const INDEX = '<!doctype html><html><head><script type="module" src="/assets/app-abc123.js"></script></head><body><div id="root"></div></body></html>';
const APP_JS = 'console.log("the dashboard");';
const FAVICON = '<svg xmlns="http://www.w3.org/2000/svg"></svg>';
const API_CSP = /^default-src 'none'/;

function isJsonError(reply: LightMyRequestResponse, status: number, code: string): { code: string; message: string } {
  assert.equal(reply.statusCode, status, reply.body.slice(0, 200));
  assert.match(String(reply.headers['content-type']), /^application\/json/, reply.body.slice(0, 200));
  const body = reply.json() as { error: { code: string; message: string } };
  assert.equal(body.error.code, code);
  assert.ok(body.error.message.length > 0);
  assert.ok(!reply.body.includes('<html'), 'not the page');
  return body.error;
}

function isIndex(reply: LightMyRequestResponse, what: string): void {
  assert.equal(reply.statusCode, 200, `${what}: ${reply.body.slice(0, 200)}`);
  assert.match(String(reply.headers['content-type']), /^text\/html/, what);
  assert.equal(reply.body, INDEX, what);
  assert.equal(reply.headers['content-security-policy'], DASHBOARD_CSP, what);
  assert.doesNotMatch(String(reply.headers['cache-control']), /immutable/, `${what}: the page is revalidated, never cached for ever`);
}

describe('the dashboard, built', () => {
  let h: InProcessServer;
  let root: string;
  let dir: string;
  before(async () => {
    // The built files sit one level inside a directory that also holds a secret: nothing may reach it.
    root = mkdtempSync(join(tmpdir(), 'driftless-dashboard-'));
    dir = join(root, 'dist');
    mkdirSync(join(dir, 'assets'), { recursive: true });
    writeFileSync(join(dir, 'index.html'), INDEX);
    writeFileSync(join(dir, 'assets', 'app-abc123.js'), APP_JS);
    writeFileSync(join(dir, 'favicon.svg'), FAVICON);
    writeFileSync(join(root, 'package.json'), '{"secret":"outside the dashboard"}');
    writeFileSync(join(root, 'secret.txt'), 'outside the dashboard');
    h = await startInProcessServer({ start: START, tokens: { [VIEWER]: 'viewer' }, dashboardDir: dir, fleetSnapshotMs: 0 });
  });
  after(async () => {
    await h.close();
    rmSync(root, { recursive: true, force: true });
  });
  const get = (url: string, headers: Record<string, string> = {}) => h.app.inject({ method: 'GET', url, headers });

  test('GET / and every page path answer index.html, as HTML, with the dashboard’s CSP, without a token', async () => {
    for (const url of ['/', '/devices', '/devices/dev-1', '/rollouts/web-2', '/sign-in', '/index.html', '/deeply/nested/page/path']) isIndex(await get(url), url);
  });

  test('a page path with a query string (a copied link with filters) is the page too', async () => {
    for (const url of ['/devices?state=failed&q=pos', '/drift?site=alpha&reason=reverted', '/?x=1']) isIndex(await get(url), url);
  });

  test('a bundle file: its bytes, its type, cached for ever', async () => {
    const reply = await get('/assets/app-abc123.js');
    assert.equal(reply.statusCode, 200);
    assert.equal(reply.body, APP_JS);
    assert.match(String(reply.headers['content-type']), /^text\/javascript/);
    assert.match(String(reply.headers['cache-control']), /immutable/);
    assert.match(String(reply.headers['cache-control']), /max-age=\d{7,}/);
    const icon = await get('/favicon.svg');
    assert.equal(icon.statusCode, 200);
    assert.equal(icon.body, FAVICON);
    assert.match(String(icon.headers['content-type']), /^image\/svg\+xml/);
    assert.doesNotMatch(String(icon.headers['cache-control']), /immutable/, 'only hashed bundles are immutable');
    assert.equal(icon.headers['x-content-type-options'], 'nosniff');
  });

  test('a missing bundle or a missing file with an extension is a JSON 404, never the page', async () => {
    for (const url of ['/assets/missing.js', '/assets/app-old999.css', '/nope.png', '/devices/dev-1.json', '/assets/', '/assets/sub/dir']) isJsonError(await get(url), 404, 'not-found');
  });

  test('unknown API paths are a JSON 404, not the page', async () => {
    for (const url of ['/v1/nope', '/v1/', '/v1', '/v1/fleet/nope', '/v1/devices/dev-1/nope', '/v1/nope?bogus=1']) {
      const reply = await get(url, { authorization: `Bearer ${VIEWER}` });
      assert.notEqual(reply.statusCode, 200, url);
      if (reply.statusCode === 404) isJsonError(reply, 404, 'not-found');
      else assert.match(String(reply.headers['content-type']), /^application\/json/, `${url}: ${reply.statusCode}`);
    }
    isJsonError(await get('/v1/nope'), 404, 'not-found');
    const body = (await get('/v1/nope')).json() as { error: { message: string } };
    assert.match(body.error.message, /\/v1\/nope/);
  });

  test('other methods on a page path are a JSON 404', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH'] as const) {
      isJsonError(await h.app.inject({ method, url: '/', payload: {} }), 404, 'not-found');
      isJsonError(await h.app.inject({ method, url: '/devices/dev-1', payload: {} }), 404, 'not-found');
    }
  });

  test('path traversal never reaches a file outside the directory', async () => {
    const attempts = [
      '/../package.json',
      '/..%2fpackage.json',
      '/%2e%2e/package.json',
      '/%2e%2e%2fpackage.json',
      '/assets/..%2f..%2fpackage.json',
      '/assets/../../package.json',
      '/assets/%2e%2e/%2e%2e/package.json',
      '/..%5cpackage.json',
      '/....//package.json',
      '/%252e%252e/package.json',
      '/../secret.txt',
      '/assets/..%2f..%2fsecret.txt',
      '/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
      '//etc/passwd',
      `/${'..%2f'.repeat(10)}etc%2fpasswd`,
    ];
    for (const url of attempts) {
      const reply = await get(url);
      assert.ok(!reply.body.includes('outside the dashboard'), `${url} served a file outside the dashboard`);
      assert.ok(!reply.body.includes('root:'), `${url} served /etc/passwd`);
      // Either a refusal, or (for a path without an extension) the page itself.
      if (reply.statusCode === 200) assert.equal(reply.body, INDEX, url);
      else assert.ok(reply.statusCode >= 400 && reply.statusCode < 500, `${url}: ${reply.statusCode}`);
    }
  });

  test('API routes keep answering JSON with the API’s own CSP', async () => {
    for (const url of ['/v1/whoami', '/v1/fleet/overview', '/healthz']) {
      const reply = await get(url, { authorization: `Bearer ${VIEWER}` });
      assert.equal(reply.statusCode, 200, `${url}: ${reply.body}`);
      assert.match(String(reply.headers['content-type']), /^application\/json/, url);
      assert.match(String(reply.headers['content-security-policy']), API_CSP, url);
      assert.equal(reply.headers['cache-control'], 'no-store', url);
    }
    const refused = await get('/v1/fleet/overview');
    isJsonError(refused, 401, 'unauthorized');
    assert.match(String(refused.headers['content-security-policy']), API_CSP);
    assert.match(String((await get('/v1/openapi.json')).headers['content-type']), /^application\/json/);
  });

  test('the CSP lets the page run only its own scripts and talk only to this server', () => {
    assert.match(DASHBOARD_CSP, /(^|; )script-src 'self'(;|$)/);
    assert.match(DASHBOARD_CSP, /(^|; )connect-src 'self'(;|$)/);
    assert.match(DASHBOARD_CSP, /(^|; )frame-ancestors 'none'(;|$)/);
    assert.match(DASHBOARD_CSP, /(^|; )object-src 'none'(;|$)/);
    assert.doesNotMatch(DASHBOARD_CSP, /unsafe-eval/);
    assert.doesNotMatch(DASHBOARD_CSP.split('; ').find((d) => d.startsWith('script-src'))!, /unsafe-inline/);
  });
});

describe('the dashboard, not built', () => {
  let h: InProcessServer;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'driftless-dashboard-empty-'));
    h = await startInProcessServer({ start: START, tokens: { [VIEWER]: 'viewer' }, dashboardDir: dir, fleetSnapshotMs: 0 });
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a page answers 503 saying to run npm run build; the API works; unknown API paths stay JSON 404', async () => {
    for (const url of ['/', '/devices/dev-1', '/assets/app-abc123.js']) {
      const reply = await h.app.inject({ method: 'GET', url });
      const error = isJsonError(reply, 503, 'unavailable');
      assert.match(error.message, /npm run build/, url);
    }
    const api = await h.app.inject({ method: 'GET', url: '/v1/whoami', headers: { authorization: `Bearer ${VIEWER}` } });
    assert.equal(api.statusCode, 200);
    isJsonError(await h.app.inject({ method: 'GET', url: '/v1/nope' }), 404, 'not-found');
  });
});

describe('no dashboard (dashboardDir: null)', () => {
  test('only the API is served: a page path is the JSON 404 of an unknown route', async () => {
    const h = await startInProcessServer({ start: START, tokens: { [VIEWER]: 'viewer' }, dashboardDir: null });
    try {
      const error = isJsonError(await h.app.inject({ method: 'GET', url: '/devices' }), 404, 'not-found');
      assert.match(error.message, /no such route: GET \/devices/);
      assert.equal(h.app.routeAccess.has('GET /*'), false);
    } finally {
      await h.close();
    }
  });
});
