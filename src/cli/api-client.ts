import { DriftlessError, isErrorCode, networkFailure } from '../protocol/errors.ts';
import { fetchTrusting, readCaFile } from '../protocol/tls-trust.ts';
import type { Connection } from './config.ts';

/** The CLI speaks only the public HTTP API, like any other client. */
export type Api = {
  get<T>(path: string): Promise<T>;
  /** A GET whose answer is text (Markdown, say), not JSON. */
  text(path: string): Promise<string>;
  /** A JSON POST; `timeoutMs` lengthens the deadline for a call that waits on a device (exec, say). */
  post<T>(path: string, body: unknown, opts?: { timeoutMs?: number }): Promise<T>;
  /** A POST of raw bytes (an artifact, say), with a deadline long enough for a large file. */
  upload<T>(path: string, bytes: Buffer): Promise<T>;
};

export function createApi(connection: Connection): Api {
  const fetch = connection.ca ? fetchTrusting(readCaFile(connection.ca, '--ca')) : globalThis.fetch;
  async function request<T>(method: string, path: string, body?: unknown, asText = false, timeoutMs?: number): Promise<T> {
    let response: Response;
    const raw = Buffer.isBuffer(body);
    try {
      response = await fetch(`${connection.server}${path}`, {
        method,
        headers: { authorization: `Bearer ${connection.token}`, ...(body === undefined ? {} : { 'content-type': raw ? 'application/octet-stream' : 'application/json' }) },
        ...(body === undefined ? {} : { body: raw ? body : JSON.stringify(body) }),
        signal: AbortSignal.timeout(timeoutMs ?? (raw ? 10 * 60_000 : 60_000)),
      });
    } catch (error) {
      const cause = networkFailure(error);
      throw new DriftlessError('unavailable', `cannot reach the server at ${connection.server}: ${cause}`);
    }
    const text = await response.text();
    if (asText && response.ok) return text as T;
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: reported below by status
    }
    if (!response.ok) {
      const error = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
      const code = isErrorCode(error?.code) ? error.code : 'internal';
      throw new DriftlessError(code, typeof error?.message === 'string' ? error.message : `server answered ${response.status}`);
    }
    return parsed as T;
  }
  return { get: (path) => request('GET', path), text: (path) => request<string>('GET', path, undefined, true), post: (path, body, opts) => request('POST', path, body, false, opts?.timeoutMs), upload: (path, bytes) => request('POST', path, bytes) };
}
