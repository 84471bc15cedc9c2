/**
 * The dashboard's only way to the server: the public HTTP API with a bearer token. Errors come back
 * as ApiError carrying the server's own message, which pages show verbatim; a 401 anywhere means
 * the token is no longer good, so the client hands control to `onUnauthorized` (back to sign-in).
 */

export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
  /** The server could not be reached or answered as a proxy does when it is down: worth retrying. */
  get unreachable(): boolean {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

export type ApiClient = {
  get: <T>(path: string, signal?: AbortSignal) => Promise<T>;
  post: <T>(path: string, body?: unknown) => Promise<T>;
};

export type ApiClientOptions = {
  token: () => string | null;
  onUnauthorized: (error: ApiError) => void;
  fetch?: typeof fetch;
};

export function createApiClient(options: ApiClientOptions): ApiClient {
  const doFetch = options.fetch ?? ((input, init) => fetch(input, init));

  async function request<T>(method: 'GET' | 'POST', path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    const token = options.token();
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await doFetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: 'no-store' });
    } catch (cause) {
      if (signal?.aborted) throw cause;
      throw new ApiError(0, 'unreachable', 'The Driftless server cannot be reached.');
    }
    const text = await response.text();
    const parsed = parseJson(text);
    if (!response.ok) {
      const error = errorOf(response.status, parsed, text);
      if (response.status === 401) options.onUnauthorized(error);
      throw error;
    }
    return parsed as T;
  }

  return {
    get: (path, signal) => request('GET', path, undefined, signal),
    post: (path, body = {}) => request('POST', path, body),
  };
}

function parseJson(text: string): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** The server's `{ error: { code, message } }`, or the best words we have when a proxy answered instead. */
function errorOf(status: number, body: unknown, text: string): ApiError {
  const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (error && typeof error.message === 'string') return new ApiError(status, typeof error.code === 'string' ? error.code : String(status), error.message);
  const fallback = text.trim().slice(0, 200) || `HTTP ${status}`;
  return new ApiError(status, String(status), status >= 502 && status <= 504 ? 'The Driftless server cannot be reached.' : fallback);
}

/** A query string from filters, leaving out empty ones so a URL stays short and readable. */
export function queryString(params: Record<string, string | number | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === '') continue;
    search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

export const encodeName = (name: string) => encodeURIComponent(name);
