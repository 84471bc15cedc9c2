import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { sha256Hex } from '../../protocol/canonical.ts';

/** Operator and enrollment tokens are random and stored only as their SHA-256. */
export function newSecretToken(prefix: 'dla' | 'dle'): string {
  return `${prefix}_${randomBytes(24).toString('base64url')}`;
}

export function hashToken(token: string): string {
  return sha256Hex(token);
}

/** What a device session token says: which device, of which tenant, until when. */
export type DeviceSessionClaims = { device: string; expiresAtMs: number; tenant: string };

/**
 * A device session token: the device name, expiry and tenant, MACed with the server's session
 * secret. Checking one is a hash, not a database read, so the unchanged-state poll stays cheap, and
 * any replica holding the secret can check it. (A revoked device is refused by an in-memory set,
 * device-gate.ts, not by waiting for its token to expire.)
 */
export function issueSessionToken(secret: Buffer, device: string, expiresAtMs: number, tenant = 'default'): string {
  const body = Buffer.from(JSON.stringify([device, expiresAtMs, tenant])).toString('base64url');
  return `${body}.${mac(secret, body)}`;
}

export function readSessionToken(secret: Buffer, token: string, nowMs: number): DeviceSessionClaims | null {
  const dot = token.indexOf('.');
  if (dot <= 0) return null;
  const body = token.slice(0, dot);
  const given = Buffer.from(token.slice(dot + 1), 'base64url');
  const expected = Buffer.from(mac(secret, body), 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  try {
    const [device, expiresAtMs, tenant = 'default'] = JSON.parse(Buffer.from(body, 'base64url').toString()) as [unknown, unknown, unknown];
    if (typeof device !== 'string' || typeof expiresAtMs !== 'number' || typeof tenant !== 'string' || expiresAtMs <= nowMs) return null;
    return { device, expiresAtMs, tenant };
  } catch {
    return null;
  }
}

function mac(secret: Buffer, body: string): string {
  return createHmac('sha256', secret).update(body).digest('base64url');
}

/**
 * Remembers session tokens already checked, so a device's poll costs a map lookup instead of a
 * MAC. Bounded: when full it starts again empty (every entry can be re-checked from the token).
 */
export function createSessionCache(secret: Buffer, maxEntries = 200_000): { read(token: string, nowMs: number): DeviceSessionClaims | null } {
  let checked = new Map<string, DeviceSessionClaims>();
  return {
    read(token, nowMs) {
      const known = checked.get(token);
      if (known) return known.expiresAtMs > nowMs ? known : null;
      const session = readSessionToken(secret, token, nowMs);
      if (session) {
        if (checked.size >= maxEntries) checked = new Map();
        checked.set(token, session);
      }
      return session;
    },
  };
}
