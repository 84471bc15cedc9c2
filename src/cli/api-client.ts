import { DriftlessError, isErrorCode, networkFailure } from '../protocol/errors.ts';
import type { Connection } from './config.ts';

/** The CLI speaks only the public HTTP API, like any other client. */
export type Api = {
  get<T>(path: string): Promise<T>;
  post<T>(path: string, body: unknown): Promise<T>;
};

export function createApi(connection: Connection): Api {
  async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${connection.server}${path}`, {
        method,
        headers: { authorization: `Bearer ${connection.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(60_000),
      });
    } catch (error) {
      const cause = networkFailure(error);
      throw new DriftlessError('unavailable', `cannot reach the server at ${connection.server}: ${cause}`);
    }
    const text = await response.text();
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
  return { get: (path) => request('GET', path), post: (path, body) => request('POST', path, body) };
}
