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

/** Why a request never got an answer, in the system's words (ECONNREFUSED, ETIMEDOUT, …) rather than fetch's "fetch failed". */
export function networkFailure(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown; errors?: { code?: unknown }[] } } | null)?.cause;
  const code = cause?.code ?? cause?.errors?.find((e) => typeof e.code === 'string')?.code;
  if (typeof code === 'string') return code;
  if (error instanceof Error && error.name === 'TimeoutError') return 'timed out';
  if (typeof cause?.message === 'string' && cause.message) return cause.message;
  return error instanceof Error ? error.message : String(error);
}
