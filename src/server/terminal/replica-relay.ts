import type { FastifyRequest } from 'fastify';
import WebSocket, { type RawData } from 'ws';
import { DriftlessError, isErrorCode } from '../../protocol/errors.ts';

/**
 * With several server replicas, a device's channel is open to one of them; an operator's terminal
 * or exec may reach another. That one passes the request on, as it came (the operator's own
 * credentials, which the holding replica checks again), to the same route on the replica holding
 * the channel, which opens, records and audits the session as always. The header marks a request
 * passed on once, so it is never passed on again.
 */
export const RELAYED_HEADER = 'x-driftless-relayed';

export function wasRelayed(request: FastifyRequest): boolean {
  return request.headers[RELAYED_HEADER] !== undefined;
}

function forwardedHeaders(request: FastifyRequest): Record<string, string> {
  const authorization = request.headers.authorization;
  return { ...(authorization ? { authorization } : {}), [RELAYED_HEADER]: '1' };
}

/** Pipes an operator's terminal socket to `target` (a ws:// or wss:// URL of the same route on the holding replica). */
export function relayTerminalToReplica(operator: WebSocket, target: string, request: FastifyRequest): void {
  // The operator's subprotocols as offered, a bearer token among them for a browser.
  const offered = String(request.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  const upstream = new WebSocket(target, offered, { headers: forwardedHeaders(request), maxPayload: 256 * 1024 });
  const waiting: { data: RawData; binary: boolean }[] = [];
  const fail = (message: string) => {
    if (operator.readyState === WebSocket.OPEN) {
      operator.send(JSON.stringify({ type: 'error', code: 'unavailable', message: message.slice(0, 1000) }));
      operator.close(1011, 'relay failed');
    }
  };

  operator.on('message', (data, binary) => {
    if (upstream.readyState === WebSocket.OPEN) upstream.send(data, { binary });
    else if (waiting.length < 256) waiting.push({ data, binary });
  });
  operator.once('close', () => upstream.terminate());
  upstream.once('open', () => {
    for (const { data, binary } of waiting.splice(0)) upstream.send(data, { binary });
  });
  upstream.on('message', (data, binary) => {
    if (operator.readyState === WebSocket.OPEN) operator.send(data, { binary });
  });
  upstream.once('close', (code, reason) => {
    if (operator.readyState === WebSocket.OPEN) operator.close(code >= 1000 && code < 5000 && code !== 1005 && code !== 1006 ? code : 1000, reason);
  });
  // Refused before the upgrade (device gone, not allowed, over a limit): the holding replica's own words.
  upstream.once('unexpected-response', (_req, response) => {
    let body = '';
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => (body = (body + chunk).slice(0, 4000)));
    response.on('end', () => {
      let message = `the server replica holding the device's channel answered ${response.statusCode}`;
      try {
        message = (JSON.parse(body) as { error: { message: string } }).error.message ?? message;
      } catch {
        // Not the API's error shape: the status says it.
      }
      fail(message);
      upstream.terminate();
    });
  });
  upstream.on('error', (error) => fail(`the server replica holding the device's channel cannot be reached: ${error.message}`));
}

/** Passes an exec request to the holding replica at `base` (its URL) and returns its answer, or its refusal as ours. */
export async function relayExecToReplica(base: string, request: FastifyRequest<{ Params: { name: string } }>, signal: AbortSignal): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(`${base}/v1/devices/${encodeURIComponent(request.params.name)}/exec`, {
      method: 'POST',
      headers: { ...forwardedHeaders(request), 'content-type': 'application/json' },
      body: JSON.stringify(request.body),
      signal,
    });
  } catch (error) {
    throw new DriftlessError('unavailable', `the server replica holding device "${request.params.name}"'s channel cannot be reached: ${(error as Error).message}`);
  }
  const body = (await response.json().catch(() => null)) as { error?: { code?: unknown; message?: unknown } } | null;
  if (response.ok) return body;
  const code = isErrorCode(body?.error?.code) ? body.error.code : 'unavailable';
  throw new DriftlessError(code, typeof body?.error?.message === 'string' ? body.error.message : `the server replica holding the device's channel answered ${response.status}`);
}
