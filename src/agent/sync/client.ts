import type { KeyObject } from 'node:crypto';
import { DriftlessError, isErrorCode, networkFailure } from '../../protocol/errors.ts';
import { gzipSync } from 'node:zlib';
import type { EnrollRequest, EnrollResponse, SessionResponse, StatusAck, StatusReport, TelemetryAck, TelemetryBatch } from '../../protocol/messages.ts';
import { sessionChallenge, signText } from '../../protocol/signing.ts';

type CallInit = Omit<RequestInit, 'headers'> & { headers?: Record<string, string> };

export type DesiredFetch = { status: 304 } | { status: 200; etag: string | null; document: unknown };

/** The agent's side of the device API. Every call has a deadline; a lost link is an `unavailable` error. */
export type ServerClient = {
  enroll(request: EnrollRequest): Promise<EnrollResponse>;
  fetchDesired(etag: string | null): Promise<DesiredFetch>;
  postStatus(report: StatusReport): Promise<StatusAck>;
  /** Uploads one telemetry batch, gzip-compressed. */
  postTelemetry(batch: TelemetryBatch): Promise<TelemetryAck>;
  /** Downloads an artifact's bytes by digest (checking them is the caller's job). */
  fetchArtifact(sha256: string): Promise<Buffer>;
  /** The server's signing-key rotations (checking them is the caller's job: protocol/key-rotation.ts). */
  fetchKeyRotations(): Promise<unknown>;
  /** A device session token, for the channel's WebSocket; `renew` drops the one held (the server refused it). */
  sessionToken(renew?: boolean): Promise<string>;
};

/**
 * How a request reaches the server: `fetch` by default. The simulator substitutes one that answers
 * in-process, so thousands of agents exercise this very client (auth, sessions, errors) without sockets.
 */
export type Transport = (url: string, init: RequestInit) => Promise<Response>;

export function createServerClient(opts: {
  serverUrl: string;
  device: string;
  privateKey: () => KeyObject | null;
  now: () => number;
  timeoutMs?: number;
  transport?: Transport;
}): ServerClient {
  const base = opts.serverUrl.replace(/\/+$/, '');
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const transport: Transport = opts.transport ?? ((url, init) => fetch(url, init));
  let session: { token: string; expiresAtMs: number } | null = null;

  async function call(path: string, init: CallInit): Promise<Response> {
    try {
      return await transport(`${base}${path}`, { ...init, signal: init.signal ?? AbortSignal.timeout(timeoutMs) });
    } catch (error) {
      const cause = networkFailure(error);
      throw new DriftlessError('unavailable', `server ${base} unreachable: ${cause}`);
    }
  }

  async function failure(response: Response): Promise<DriftlessError> {
    const body = (await response.json().catch(() => null)) as { error?: { code?: unknown; message?: unknown } } | null;
    const code = isErrorCode(body?.error?.code) ? body.error.code : response.status === 429 ? 'busy' : response.status >= 500 ? 'unavailable' : 'invalid-input';
    const message = typeof body?.error?.message === 'string' ? body.error.message : `server answered ${response.status}`;
    return new DriftlessError(code, message, retryAfterMs(response.headers.get('retry-after'), opts.now()));
  }

  async function sessionToken(): Promise<string> {
    if (session && session.expiresAtMs - 60_000 > opts.now()) return session.token;
    const key = opts.privateKey();
    if (!key) throw new DriftlessError('unauthorized', 'device is not enrolled');
    const timestamp = new Date(opts.now()).toISOString();
    const response = await call('/v1/device/session', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ device: opts.device, timestamp, signature: signText(key, sessionChallenge(opts.device, timestamp)) }),
    });
    if (!response.ok) throw await failure(response);
    const body = (await response.json()) as SessionResponse;
    session = { token: body.token, expiresAtMs: Date.parse(body.expiresAt) };
    return session.token;
  }

  /** A device call with its session; an expired session is renewed once. */
  async function deviceCall(path: string, init: CallInit): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const token = await sessionToken();
      const response = await call(path, { ...init, headers: { ...init.headers, authorization: `Bearer ${token}` } });
      if (response.status !== 401 || attempt > 0) return response;
      session = null;
    }
  }

  return {
    async enroll(request) {
      const response = await call('/v1/enroll', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
      if (!response.ok) throw await failure(response);
      return (await response.json()) as EnrollResponse;
    },
    async fetchDesired(etag) {
      const response = await deviceCall('/v1/device/desired-state', { headers: etag ? { 'if-none-match': etag } : {} });
      if (response.status === 304) return { status: 304 };
      if (!response.ok) throw await failure(response);
      const text = await response.text();
      let document: unknown;
      try {
        document = JSON.parse(text);
      } catch {
        document = text;
      }
      return { status: 200, etag: response.headers.get('etag'), document };
    },
    async postStatus(report) {
      const response = await deviceCall('/v1/device/status', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(report) });
      if (!response.ok) throw await failure(response);
      return (await response.json()) as StatusAck;
    },
    async postTelemetry(batch) {
      const body = gzipSync(JSON.stringify(batch));
      const response = await deviceCall('/v1/device/telemetry', { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body });
      if (!response.ok) throw await failure(response);
      return (await response.json()) as TelemetryAck;
    },
    async fetchArtifact(sha256) {
      // A release may be large and the link slow: the deadline is the download's, not a status call's.
      const response = await deviceCall(`/v1/device/artifacts/${sha256}`, { signal: AbortSignal.timeout(Math.max(timeoutMs, 10 * 60_000)) });
      if (!response.ok) throw await failure(response);
      return Buffer.from(await response.arrayBuffer());
    },
    async fetchKeyRotations() {
      const response = await deviceCall('/v1/device/keys', {});
      if (!response.ok) throw await failure(response);
      return ((await response.json()) as { rotations?: unknown }).rotations;
    },
    async sessionToken(renew = false) {
      if (renew) session = null;
      return sessionToken();
    },
  };
}

/** Retry-After in seconds or as an HTTP date; null when absent or unreadable. */
export function retryAfterMs(header: string | null, nowMs: number): number | null {
  if (header === null || header.trim() === '') return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}
