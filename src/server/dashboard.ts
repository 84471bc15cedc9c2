import type { FastifyInstance, FastifyReply } from 'fastify';
import { Type } from '@sinclair/typebox';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DriftlessError } from '../protocol/errors.ts';

/** Where `npm run build` writes the dashboard (web/ built by Vite). */
export const DEFAULT_DASHBOARD_DIR = fileURLToPath(new URL('../../web/dist/', import.meta.url));

const types: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * The pages may run only their own scripts and talk only to this server (the API and the terminal
 * WebSocket); styles may be inline because the terminal and the charts set them at run time.
 */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

type Asset = { body: Buffer; type: string; immutable: boolean };

/** Every file of the built dashboard, read once at start-up: a lookup by path, so no request can reach outside it. */
function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  const walk = (at: string) => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) {
        const url = `/${relative(dir, path).split(sep).join('/')}`;
        // Vite names what it bundles by content hash under assets/: such a file never changes.
        assets.set(url, { body: readFileSync(path), type: types[extname(path)] ?? 'application/octet-stream', immutable: url.startsWith('/assets/') });
      }
    }
  };
  walk(dir);
  return assets;
}

/**
 * Serves the dashboard: its files, and `index.html` for every other page path (the pages route in
 * the browser). API paths never fall through to it: an unknown `/v1/…` stays a JSON 404.
 */
export function registerDashboard(app: FastifyInstance, dir: string | null): void {
  if (dir === null) return;
  const assets = existsSync(join(dir, 'index.html')) ? loadAssets(dir) : null;
  const send = (reply: FastifyReply, asset: Asset) =>
    reply
      .header('content-type', asset.type)
      .header('content-security-policy', DASHBOARD_CSP)
      .header('cache-control', asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
      .send(asset.body);

  // A page's own query string (the filters of a copied link, `/devices?state=failed`) is the browser's to read: any is accepted.
  const PageQuery = Type.Object({}, { additionalProperties: true });
  app.get<{ Params: { '*': string } }>('/*', { config: { access: 'public' }, schema: { hide: true, querystring: PageQuery } }, async (request, reply) => {
    const path = `/${request.params['*']}`;
    if (path.startsWith('/v1/') || path === '/v1' || path === '/metrics') {
      throw new DriftlessError('not-found', `no such route: ${request.method} ${request.url.split('?')[0]}`);
    }
    if (!assets) throw new DriftlessError('unavailable', 'the dashboard is not built: run `npm run build` (npm install does it) and restart the server; the API is served under /v1/');
    const asset = assets.get(path);
    if (asset) return send(reply, asset);
    // A missing bundle file is a 404, not the page: a stale tab asking for an old asset must not get HTML.
    if (path.startsWith('/assets/') || extname(path) !== '') throw new DriftlessError('not-found', `no such file: ${path}`);
    return send(reply, assets.get('/index.html')!);
  });
}
