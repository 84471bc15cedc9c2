import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { DriftlessError } from './errors.ts';

/**
 * Reaching a server whose certificate the system does not know (a `driftless server --tls`
 * self-signed one, or a private CA): a fetch-shaped function over node:https that trusts the given
 * CA certificates, for the agent's and the CLI's clients. Node's own fetch takes no CA per call,
 * and changing the process-wide trust would leak into everything else in the process.
 */
export type FetchLike = (url: string, init?: RequestInit) => Promise<Response>;

/** The PEM text of a CA file named by `--ca` or DRIFTLESS_CA, or a clear error naming the file. */
export function readCaFile(path: string, flag = '--ca'): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new DriftlessError('invalid-input', `${flag}: cannot read "${path}": ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new DriftlessError('invalid-input', `${flag}: "${path}" holds no PEM certificate`);
  return text;
}

export function fetchTrusting(caPem: string): FetchLike {
  const agent = new Agent({ ca: caPem, keepAlive: true });
  return (url, init = {}) =>
    new Promise<Response>((resolve, reject) => {
      const target = new URL(url);
      const signal = init.signal ?? undefined;
      const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
      const headers = Object.fromEntries(new Headers(init.headers).entries());
      const method = init.method ?? 'GET';
      const request = send(target, { method, headers, ...(target.protocol === 'https:' ? { agent } : {}), ...(signal ? { signal } : {}) }, (response) => {
        const answer = new Headers();
        for (const [name, value] of Object.entries(response.headers)) for (const one of [value ?? []].flat()) answer.append(name, one);
        const status = response.statusCode ?? 502;
        const empty = status === 204 || status === 304 || method === 'HEAD';
        if (empty) response.resume();
        resolve(new Response(empty ? null : (Readable.toWeb(response) as ReadableStream<Uint8Array>), { status, statusText: response.statusMessage ?? '', headers: answer }));
      });
      // Shaped as fetch fails, so networkFailure reads the cause the same way.
      request.on('error', (error) => reject(signal?.aborted ? signal.reason : new TypeError('fetch failed', { cause: error })));
      const body = init.body;
      if (body !== undefined && body !== null && typeof body !== 'string' && !(body instanceof Uint8Array)) {
        request.destroy();
        reject(new TypeError('fetchTrusting sends only string or byte bodies'));
        return;
      }
      request.end(body ?? undefined);
    });
}
