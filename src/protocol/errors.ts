/**
 * Errors are values with a machine-readable code and a message an operator can act on.
 * The same codes travel over HTTP (as `{ error: { code, message } }`) and come out of the CLI
 * as one line.
 */
export const errorStatus = {
  'invalid-input': 400,
  unauthorized: 401,
  forbidden: 403,
  'not-found': 404,
  conflict: 409,
  'payload-too-large': 413,
  'signature-invalid': 422,
  'stale-generation': 422,
  'replayed-generation': 422,
  'empty-desired-state': 422,
  /** A template not signed by a release key the server trusts (protocol/release.ts). */
  'release-unsigned': 422,
  'release-mismatch': 422,
  'release-expired': 422,
  busy: 429,
  unavailable: 503,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof errorStatus;

export class DriftlessError extends Error {
  readonly code: ErrorCode;
  /** For `busy` and `unavailable`: when the caller may try again (the server's Retry-After). */
  readonly retryAfterMs: number | null;
  constructor(code: ErrorCode, message: string, retryAfterMs: number | null = null) {
    super(message);
    this.name = 'DriftlessError';
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
  get status(): number {
    return errorStatus[this.code];
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(errorStatus, value);
}

const untrusted = "the server's TLS certificate is not trusted; pass --ca FILE (or set DRIFTLESS_CA) naming the server's certificate or its CA";
/** What a TLS failure means to whoever must fix it. */
const tlsHints: Record<string, string> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: `self-signed certificate: ${untrusted}`,
  SELF_SIGNED_CERT_IN_CHAIN: `self-signed certificate in the chain: ${untrusted}`,
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: `certificate from an unknown authority: ${untrusted}`,
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: `certificate from an unknown authority: ${untrusted}`,
  CERT_HAS_EXPIRED: "the server's TLS certificate has expired",
  CERT_NOT_YET_VALID: "the server's TLS certificate is not valid yet (check the clocks)",
  ERR_TLS_CERT_ALTNAME_INVALID: "the server's TLS certificate does not name this host; use a name or address it holds",
  // A TLS server hangs up on plain HTTP.
  UND_ERR_SOCKET: 'the server closed the connection (if it serves TLS, use an https:// URL)',
  ECONNRESET: 'the connection was reset (if the server serves TLS, use an https:// URL)',
  EPROTO: 'TLS handshake failed (an https:// URL to a server without TLS?)',
  ERR_SSL_WRONG_VERSION_NUMBER: 'TLS handshake failed: the server does not speak TLS here; use an http:// URL',
};

/** Why a request never got an answer, in the system's words (ECONNREFUSED, ETIMEDOUT, …) rather than fetch's "fetch failed". */
export function networkFailure(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown; errors?: { code?: unknown }[] } } | null)?.cause;
  const code = cause?.code ?? cause?.errors?.find((e) => typeof e.code === 'string')?.code;
  if (typeof code === 'string') return tlsHints[code] ? `${code}: ${tlsHints[code]}` : code;
  if (error instanceof Error && error.name === 'TimeoutError') return 'timed out';
  if (typeof cause?.message === 'string' && cause.message) return cause.message;
  return error instanceof Error ? error.message : String(error);
}
