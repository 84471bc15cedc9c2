import type { FastifyRequest } from 'fastify';

/**
 * No secret in a log line. The server's log (pino through Fastify) never holds an Authorization
 * header, an API or enrollment token, a device session, a private key or a password: known fields
 * are censored by path, the request is logged by its own serializer (method, path, query keys,
 * source) rather than its headers, and every message and error text is scrubbed of anything shaped
 * like one of our secrets, as a last line for a secret that slipped into free text.
 */

/** Where the server's log goes: true for standard output, or a stream (tests read it back). */
export type ServerLogger = boolean | { stream?: { write(line: string): unknown }; level?: string };

const CENSOR = '[redacted]';

/** Field names that hold secrets, wherever they appear in a logged object. */
const SECRET_FIELDS = ['authorization', 'cookie', 'token', 'enrollToken', 'adminToken', 'privateKey', 'sessionSecret', 'secret', 'password', 'signature', 'key'];

const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
  'res.headers["set-cookie"]',
  ...SECRET_FIELDS.flatMap((field) => [field, `*.${field}`, `*.*.${field}`]),
];

const SECRET_SHAPES: [RegExp, string][] = [
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g, `PRIVATE KEY ${CENSOR}`],
  [/\b(Bearer|Basic)\s+\S+/gi, `$1 ${CENSOR}`],
  // API and enrollment tokens as the server makes them.
  [/\b(dla|dle)_[A-Za-z0-9_-]{8,}/g, `$1_${CENSOR}`],
  // A device session: base64url body, a dot, a base64url HMAC-SHA256.
  [/\b[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{43}\b/g, CENSOR],
];

/** Replaces anything shaped like one of our secrets in free text. */
export function scrubSecrets(text: string): string {
  let out = text;
  for (const [shape, replacement] of SECRET_SHAPES) out = out.replace(shape, replacement);
  return out;
}

const SECRET_QUERY = /token|secret|key|signature|password|auth|session/i;

/** A URL for the log: the path, and the query's keys with secret-looking values censored. */
export function loggableUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return scrubSecrets(url);
  const params = new URLSearchParams(url.slice(q + 1));
  const parts = [...params].map(([key, value]) => `${key}=${SECRET_QUERY.test(key) ? CENSOR : value}`);
  return scrubSecrets(`${url.slice(0, q)}?${parts.join('&')}`);
}

/** What is logged of a request: never its headers (a line may also pass a plain object as `req`). */
function requestSerializer(request: Partial<FastifyRequest> | null | undefined): Record<string, unknown> {
  if (typeof request?.url !== 'string') return {};
  return { method: request.method, url: loggableUrl(request.url), host: request.host, remoteAddress: request.ip, remotePort: request.socket?.remotePort };
}

function errorSerializer(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: scrubSecrets(String(error)) };
  const code = (error as { code?: unknown }).code;
  return { type: error.name, message: scrubSecrets(error.message), ...(typeof code === 'string' ? { code } : {}), ...(error.stack ? { stack: scrubSecrets(error.stack) } : {}) };
}

/** Fastify's `logger` option for a ServerLogger: redaction, safe serializers and a scrubbing hook. */
export function serverLoggerOptions(logger: ServerLogger | undefined): false | Record<string, unknown> {
  if (!logger) return false;
  return {
    level: 'info',
    ...(logger === true ? {} : logger),
    redact: { paths: REDACT_PATHS, censor: CENSOR },
    serializers: { req: requestSerializer, err: errorSerializer, error: errorSerializer },
    hooks: {
      logMethod(this: unknown, args: unknown[], method: (...args: unknown[]) => void) {
        // An error logged alone becomes its own message: that text is scrubbed here, its fields by the serializer.
        const [first] = args;
        const spelled = args.length === 1 && first instanceof Error ? [{ err: first }, first.message] : args;
        method.apply(this, spelled.map((arg) => (typeof arg === 'string' ? scrubSecrets(arg) : arg)));
      },
    },
  };
}
