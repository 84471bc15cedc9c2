import type { KeyObject } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { createServerClient, type ServerClient, type Transport } from '../agent/sync/client.ts';

/** The one thing the simulator needs of a server: Fastify's in-process request injection. */
export type InjectableApp = Pick<FastifyInstance, 'inject'>;

// Statuses whose responses have no body by definition; `Response` refuses one for them.
const nullBodyStatuses = new Set([101, 103, 204, 205, 304]);

/**
 * A transport that hands each request to `app.inject()`: the same routes, hooks, validation and
 * auth as over TCP, with no socket, so ten thousand agents cost no file descriptors. The answer
 * is a real `Response`, so the agent's own client reads it exactly as it reads one from fetch.
 */
export function createInjectTransport(app: InjectableApp): Transport {
  return async (url, init) => {
    const signal = init.signal ?? undefined;
    signal?.throwIfAborted();
    const { pathname, search } = new URL(url);
    const injected = app.inject({
      method: (init.method ?? 'GET') as 'GET',
      url: `${pathname}${search}`,
      headers: headersOf(init.headers),
      ...(init.body === undefined || init.body === null ? {} : { payload: bodyOf(init.body) }),
    });
    const answer = await (signal ? abortable(injected, signal) : injected);
    const headers = new Headers();
    for (const [name, value] of Object.entries(answer.headers)) {
      if (value === undefined) continue;
      if (Array.isArray(value)) for (const item of value) headers.append(name, item);
      else headers.set(name, String(value));
    }
    const body = nullBodyStatuses.has(answer.statusCode) ? null : new Uint8Array(answer.rawPayload);
    return new Response(body, { status: answer.statusCode, headers });
  };
}

/** The agent's real server client over an in-process app. */
export function createInjectClient(opts: {
  app: InjectableApp;
  /** Only names the server in error messages; requests never leave the process. */
  serverUrl: string;
  device: string;
  privateKey: () => KeyObject | null;
  now?: () => number;
  timeoutMs?: number;
  /** Wraps the in-process transport, e.g. with link faults. */
  wrap?: (transport: Transport) => Transport;
}): ServerClient {
  const transport = createInjectTransport(opts.app);
  return createServerClient({
    serverUrl: opts.serverUrl,
    device: opts.device,
    privateKey: opts.privateKey,
    now: opts.now ?? Date.now,
    ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
    transport: opts.wrap ? opts.wrap(transport) : transport,
  });
}

function headersOf(headers: RequestInit['headers']): Record<string, string> {
  if (!headers) return {};
  // The agent's client passes plain objects: the cheap path, taken ten thousand times a poll interval.
  if (!(headers instanceof Headers) && !Array.isArray(headers)) return headers as Record<string, string>;
  return Object.fromEntries(new Headers(headers));
}

function bodyOf(body: NonNullable<RequestInit['body']>): string | Buffer {
  if (typeof body === 'string') return body;
  if (body instanceof Uint8Array) return Buffer.from(body);
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  throw new TypeError('the in-process transport carries string or byte bodies only');
}

/** Inject cannot be cancelled, but the caller's deadline still holds: the answer is dropped, as a timed-out fetch drops it. */
function abortable<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
