import { gunzipSync } from 'node:zlib';
import type { TcpProxy } from './tcp-proxy.ts';

/**
 * The HTTP/1.1 requests a client sends through a TCP proxy, parsed from the bytes as they pass
 * (keep-alive, `content-length` and chunked bodies). A request is reported once its last byte has
 * been forwarded and before the server can have answered it, so a test can react to a request
 * (hold the answers back, say) and record what was really sent, resends included.
 */
export type TappedRequest = { connection: number; method: string; path: string; headers: Record<string, string>; body: Buffer };

export function tapHttpRequests(proxy: TcpProxy, onRequest: (request: TappedRequest) => void): () => void {
  const pending = new Map<number, Buffer>();
  const broken = new Set<number>();
  return proxy.tap((direction, chunk, connection) => {
    if (direction !== 'up' || broken.has(connection)) return;
    let buffer = Buffer.concat([pending.get(connection) ?? Buffer.alloc(0), chunk]);
    for (;;) {
      const parsed = parseRequest(buffer, connection);
      if (parsed === 'incomplete') break;
      if (parsed === 'invalid') {
        broken.add(connection); // not HTTP (or not understood): ignore the rest of this connection
        buffer = Buffer.alloc(0);
        break;
      }
      buffer = buffer.subarray(parsed.consumed);
      onRequest(parsed.request);
    }
    if (buffer.length > 0) pending.set(connection, buffer);
    else pending.delete(connection);
  });
}

function parseRequest(buffer: Buffer, connection: number): { request: TappedRequest; consumed: number } | 'incomplete' | 'invalid' {
  const headEnd = buffer.indexOf('\r\n\r\n');
  if (headEnd < 0) return buffer.length > 64 * 1024 ? 'invalid' : 'incomplete';
  const [requestLine, ...headerLines] = buffer.subarray(0, headEnd).toString('latin1').split('\r\n');
  const match = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(requestLine ?? '');
  if (!match) return 'invalid';
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon <= 0) return 'invalid';
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const start = headEnd + 4;
  const request = (body: Buffer) => ({ connection, method: match[1]!, path: match[2]!, headers, body });
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    const parts: Buffer[] = [];
    let at = start;
    for (;;) {
      const lineEnd = buffer.indexOf('\r\n', at);
      if (lineEnd < 0) return 'incomplete';
      const size = parseInt(buffer.subarray(at, lineEnd).toString('latin1').split(';')[0]!, 16);
      if (Number.isNaN(size)) return 'invalid';
      if (size === 0) {
        // No trailers are expected: the body ends with an empty line.
        if (buffer.length < lineEnd + 4) return 'incomplete';
        return { request: request(Buffer.concat(parts)), consumed: lineEnd + 4 };
      }
      if (buffer.length < lineEnd + 2 + size + 2) return 'incomplete';
      parts.push(buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
    }
  }
  const length = Number(headers['content-length'] ?? 0);
  if (!Number.isSafeInteger(length) || length < 0) return 'invalid';
  if (buffer.length < start + length) return 'incomplete';
  return { request: request(Buffer.from(buffer.subarray(start, start + length))), consumed: start + length };
}

/** The JSON a request carries, gunzipped when its `content-encoding` says so. */
export function requestJson(request: TappedRequest): unknown {
  const raw = /gzip/i.test(request.headers['content-encoding'] ?? '') ? gunzipSync(request.body) : request.body;
  return JSON.parse(raw.toString('utf8'));
}
