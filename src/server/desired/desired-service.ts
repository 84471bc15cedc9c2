import type { KeyObject } from 'node:crypto';
import { canonicalJson } from '../../protocol/canonical.ts';
import type { SignedDesiredState } from '../../protocol/messages.ts';
import { signValue } from '../../protocol/signing.ts';
import type { RolloutEngine } from '../rollout/rollout-engine.ts';
import type { DesiredRecord, Store } from '../store/store.ts';
import { desiredComponentsFor, desiredReleasesFor, nextDesiredState } from './compute.ts';

/** A device's current document, ready to serve: its body bytes and entity tag. */
export type ServedDesired = { etag: string; body: string; generation: number; expiresAtMs: number | null };

/**
 * Keeps each device's signed desired-state document. `refresh` recomputes inside the caller's
 * transaction and returns what to publish; `publish` puts it in the in-memory cache only after
 * the transaction committed, so the poll path never serves what was not stored.
 */
export type DesiredService = {
  /**
   * Runs a change in one transaction, recomputes the desired state of the devices it touched
   * ('all' after a change to Deployments), and publishes the new documents once committed.
   */
  change<T>(store: Store, work: (tx: Store) => Promise<{ result: T; devices: readonly string[] | 'all' }>): Promise<T>;
  refresh(store: Store, devices?: readonly string[]): Promise<SignedDesiredState[]>;
  publish(documents: readonly SignedDesiredState[]): void;
  served(device: string): ServedDesired | undefined;
  warm(store: Store): Promise<void>;
  /**
   * Serves what another server replica stored: these devices' documents, or ('all') every one
   * whose generation differs from the one served here. Returns the devices whose document changed.
   */
  reload(store: Store, devices: readonly string[] | 'all'): Promise<string[]>;
  /**
   * Re-issues (new generation, fresh expiry) the documents that would expire within half their
   * validity, at most `limit` of them: run in the background, so the poll path never signs.
   * Returns how many were renewed.
   */
  renew(store: Store, limit?: number): Promise<number>;
};

/** How long a desired state is valid by default: a device refuses it for new changes after this (freeze protection). */
export const DEFAULT_DESIRED_VALIDITY_MS = 24 * 3600_000;

export function createDesiredService(deps: {
  signingKey: KeyObject;
  keyId: string;
  rollouts: RolloutEngine;
  now: () => number;
  /** Told which devices got a new document once it is served (the device channels hint them to pull). */
  onPublish?: (devices: string[]) => void;
  /** Release public keys (SPKI, base64): documents carry them and the signed releases of their components. */
  releaseKeys?: readonly string[];
  /** How long each document is valid (`expiresAt`); none: documents do not expire. */
  validityMs?: number;
}): DesiredService {
  const cache = new Map<string, ServedDesired>();
  const toServed = (doc: SignedDesiredState): ServedDesired => ({
    etag: `"g${doc.payload.generation}-${doc.signature.slice(0, 16).replace(/[^A-Za-z0-9]/g, '')}"`,
    body: canonicalJson(doc),
    generation: doc.payload.generation,
    expiresAtMs: doc.payload.expiresAt === undefined ? null : Date.parse(doc.payload.expiresAt),
  });
  const releaseKeys = deps.releaseKeys && deps.releaseKeys.length > 0 ? [...deps.releaseKeys].sort() : undefined;
  const validityMs = deps.validityMs;
  const unrenewable = new Set<string>();

  const service: DesiredService = {
    async change(store, work) {
      const { result, documents } = await store.transaction(async (tx) => {
        const { result, devices } = await work(tx);
        if (devices !== 'all' && devices.length === 0) return { result, documents: [] };
        return { result, documents: await service.refresh(tx, devices === 'all' ? undefined : devices) };
      });
      service.publish(documents);
      return result;
    },
    async refresh(store, only) {
      const targets = await deps.rollouts.targets(store);
      // A few devices are read one by one; a whole-fleet refresh reads the fleet once.
      const few = only !== undefined && only.length < 200;
      const listed = few ? await Promise.all([...new Set(only)].map((name) => store.getDevice(name))) : await store.listDevices();
      // Their current documents the same way: one by one for a few, in one read for many.
      const stored = few ? null : new Map((await store.listDesired()).map((d) => [d.device, d]));
      const previousOf = async (device: string) => (stored ? (stored.get(device) ?? null) : store.getDesired(device));
      const wanted = only ? new Set(only) : null;
      const devices = listed.filter((d): d is NonNullable<typeof d> => d !== null && d.status === 'accepted' && (!wanted || wanted.has(d.name)));
      const nowMs = deps.now();
      const issuedAt = new Date(nowMs).toISOString();
      const validity = validityMs === undefined ? {} : { expiresAt: new Date(nowMs + validityMs).toISOString(), renewBefore: new Date(nowMs + validityMs / 2).toISOString() };
      const artifacts = new Map((await store.listArtifacts()).map((a) => [a.sha256, { name: a.name, version: a.version, sha256: a.sha256, size: a.size, signature: a.signature }]));
      const artifactOf = (sha256: string) => artifacts.get(sha256) ?? null;
      const changed: SignedDesiredState[] = [];
      for (const device of devices) {
        const previous = await previousOf(device.name);
        const trust = { ...validity, ...(releaseKeys ? { releaseKeys, releases: desiredReleasesFor(device, targets) } : {}) };
        const last = previous ? { generation: previous.generation, contentHash: previous.contentHash, expiresAt: previous.document.payload.expiresAt } : null;
        const next = nextDesiredState(device.name, desiredComponentsFor(device, targets, artifactOf), last, issuedAt, trust);
        if (!next) continue;
        const document: SignedDesiredState = { payload: next.state, keyId: deps.keyId, signature: signValue(deps.signingKey, next.state) };
        await store.putDesired({ device: device.name, generation: next.state.generation, contentHash: next.contentHash, document, issuedAt });
        changed.push(document);
      }
      return changed;
    },
    publish(documents) {
      for (const doc of documents) {
        cache.set(doc.payload.device, toServed(doc));
        unrenewable.delete(doc.payload.device);
      }
      if (documents.length > 0) deps.onPublish?.(documents.map((doc) => doc.payload.device));
    },
    served(device) {
      return cache.get(device);
    },
    async renew(store, limit = 1000) {
      if (validityMs === undefined) return 0;
      const before = deps.now() + validityMs / 2;
      const due: string[] = [];
      for (const [device, served] of cache) {
        if ((served.expiresAtMs === null || served.expiresAtMs <= before) && !unrenewable.has(device)) due.push(device);
        if (due.length >= limit) break;
      }
      if (due.length === 0) return 0;
      await service.change(store, async () => ({ result: undefined, devices: due }));
      // A device refresh skips (revoked, say) is not tried again until it gets a document some other way.
      const still = due.filter((device) => cache.get(device)?.expiresAtMs === null || (cache.get(device)?.expiresAtMs ?? 0) <= before);
      for (const device of still) unrenewable.add(device);
      return due.length - still.length;
    },
    async warm(store) {
      for (const record of await store.listDesired()) cache.set(record.device, toServed(record.document));
    },
    async reload(store, devices) {
      const changed: string[] = [];
      const serve = (device: string, record: DesiredRecord | null) => {
        if (!record) {
          if (cache.delete(device)) changed.push(device);
        } else if (cache.get(device)?.generation !== record.generation) {
          cache.set(device, toServed(record.document));
          unrenewable.delete(device);
          changed.push(device);
        }
      };
      if (devices !== 'all') {
        for (const device of new Set(devices)) serve(device, await store.getDesired(device));
        return changed;
      }
      // Everything: compare generations first, then read only the documents that differ.
      const stored = new Map((await store.listDesiredGenerations()).map((d) => [d.device, d.generation]));
      for (const [device, generation] of stored) if (cache.get(device)?.generation !== generation) serve(device, await store.getDesired(device));
      for (const device of [...cache.keys()]) if (!stored.has(device)) serve(device, null);
      return changed;
    },
  };
  return service;
}
