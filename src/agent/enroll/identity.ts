import { hostname } from 'node:os';
import { generateKeyPair, keyId, loadPrivateKey, loadPublicKey } from '../../protocol/signing.ts';
import { readJson, writeJson, type Storage } from '../storage/storage.ts';
import type { KeyObject } from 'node:crypto';

/**
 * The device's identity: a key pair made here, never sent anywhere but its public half, and the
 * server key pinned at enrollment. Written before enrolling, so an answer lost in transit is
 * retried with the same key.
 */
export type Identity = {
  name: string;
  serverUrl: string;
  privateKey: string;
  publicKey: string;
  /** The server's signing key, pinned when enrollment succeeded; null until then. */
  serverKey: string | null;
};

const FILE = 'identity.json';
const isIdentity = (v: unknown): v is Identity =>
  v !== null && typeof v === 'object' && typeof (v as Identity).name === 'string' && typeof (v as Identity).privateKey === 'string';

export function loadIdentity(storage: Storage): Identity | null {
  return readJson(storage, FILE, isIdentity);
}

export function createIdentity(storage: Storage, name: string, serverUrl: string): Identity {
  const identity: Identity = { name, serverUrl, ...generateKeyPair(), serverKey: null };
  writeJson(storage, FILE, identity);
  return identity;
}

export function pinServerKey(storage: Storage, identity: Identity, serverKey: string): Identity {
  loadPublicKey(serverKey);
  const next = { ...identity, serverKey };
  writeJson(storage, FILE, next);
  return next;
}

export type Keys = { privateKey: KeyObject; server: { key: KeyObject; keyId: string } };

export function keysOf(identity: Identity): Keys | null {
  if (!identity.serverKey) return null;
  return { privateKey: loadPrivateKey(identity.privateKey), server: { key: loadPublicKey(identity.serverKey), keyId: keyId(identity.serverKey) } };
}

/** A device name from the host name, made to fit the resource name rules. */
export function defaultDeviceName(): string {
  const name = hostname().toLowerCase().replace(/[^a-z0-9.-]+/g, '-').replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '').slice(0, 63);
  return name || 'device';
}
