/**
 * The operator ⇄ server terminal frames (src/protocol/channel.ts): JSON text whose `data` is the
 * base64 of raw bytes, so a shell's output arrives byte-exact even when a UTF-8 sequence is split.
 */
export type ServerFrame =
  | { type: 'opened'; recording: string }
  | { type: 'output'; data: string }
  | { type: 'exit'; exitCode: number }
  | { type: 'error'; code: string; message: string };

export type ClientFrame = { type: 'input'; data: string } | { type: 'resize'; cols: number; rows: number };

export function decodeBase64(data: string): Uint8Array {
  const binary = atob(data);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export function encodeBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

const encoder = new TextEncoder();

export const inputFrame = (typed: string): ClientFrame => ({ type: 'input', data: encodeBase64(encoder.encode(typed)) });

/** Padded base64, as the server writes it (Buffer's base64): anything else would make `atob` throw or guess. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** One frame from the server, or null for anything that is not JSON, not a known type or lacks its fields. */
export function parseServerFrame(text: unknown): ServerFrame | null {
  if (typeof text !== 'string') return null;
  let frame: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null) return null;
    frame = parsed as Record<string, unknown>;
  } catch {
    return null;
  }
  const { type, recording, data, exitCode, code, message } = frame;
  if (type === 'opened' && typeof recording === 'string') return { type, recording };
  if (type === 'output' && typeof data === 'string' && BASE64.test(data)) return { type, data };
  if (type === 'exit' && Number.isInteger(exitCode)) return { type, exitCode: exitCode as number };
  if (type === 'error' && typeof code === 'string' && typeof message === 'string') return { type, code, message };
  return null;
}

/** The socket's address, beside the page: ws:// or wss:// as the page itself is served. */
export function terminalUrl(device: string, cols: number, rows: number): string {
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${window.location.host}/v1/devices/${encodeURIComponent(device)}/terminal?cols=${cols}&rows=${rows}`;
}

/** A browser cannot set an Authorization header on a WebSocket, so the token rides in a subprotocol. */
export const terminalProtocols = (token: string) => ['driftless.terminal', `driftless.bearer.${token}`];
