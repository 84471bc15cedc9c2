import type { KeyObject } from 'node:crypto';
import { contentHash } from '../../protocol/canonical.ts';
import { SignedDesiredState, type DesiredState } from '../../protocol/messages.ts';
import { componentReleaseProblem, releaseKeyRing, type ReleaseProblem } from '../../protocol/release.ts';
import { verifyValue } from '../../protocol/signing.ts';
import { problems } from '../../protocol/validate.ts';

/** Why a desired-state document was refused; each names an attack or an accident. */
export type Refusal = {
  code: 'malformed' | 'unsigned' | 'unknown-key' | 'bad-signature' | 'wrong-device' | 'older-generation' | 'replayed-generation' | 'empty-without-intent' | 'expired-desired-state' | ReleaseProblem['code'];
  message: string;
};

export type Trusted = { state: DesiredState; contentHash: string };

/**
 * What the device holds beyond the current document (agent/sync/trust-state.ts): the highest
 * generation it ever trusted, kept apart from the document so a restored old copy cannot lower it,
 * and the release keys it pinned. `nowMs` null skips expiry checks (a document trusted before).
 */
export type TrustPolicy = { nowMs: number | null; highWater: { generation: number; contentHash: string } | null; releaseKeys: readonly string[] };

/** No floor, no release keys, no clock: the checks every document gets. */
export const BASIC_POLICY: TrustPolicy = { nowMs: null, highWater: null, releaseKeys: [] };

/**
 * Decides whether to trust a desired-state document. Pure: the pinned server key, this device's
 * name and what it trusts now are inputs. A document is trusted only if it is well-formed, signed
 * by the pinned key, meant for this device, newer than what we have (the same generation must be
 * byte-for-byte the same document), and not empty unless it says so. With a clock it must not have
 * expired (freeze protection); with release keys pinned, or named by the document for the first
 * time, every component must be exactly what a release key signed (a stolen server key cannot
 * invent a release). A refusal never touches what runs: the agent keeps what it trusted.
 */
export function verifyDesiredState(
  document: unknown,
  pinned: { key: KeyObject; keyId: string },
  device: string,
  current: Trusted | null,
  policy: TrustPolicy = BASIC_POLICY,
): { ok: true; trusted: Trusted; changed: boolean; pinReleaseKeys?: readonly string[] } | { ok: false; refusal: Refusal } {
  const refuse = (code: Refusal['code'], message: string) => ({ ok: false as const, refusal: { code, message } });
  if (document && typeof document === 'object' && !('signature' in document)) return refuse('unsigned', 'desired state is not signed');
  const [problem] = problems(SignedDesiredState, document, 1);
  if (problem) return refuse('malformed', `desired state is malformed: ${problem.field}: ${problem.message}`);
  const signed = document as SignedDesiredState;
  if (signed.keyId !== pinned.keyId) return refuse('unknown-key', `desired state is signed by key ${signed.keyId}, not the pinned server key ${pinned.keyId}`);
  if (!verifyValue(pinned.key, signed.payload, signed.signature)) return refuse('bad-signature', 'desired state signature does not match its content (tampered?)');
  const state = signed.payload;
  if (state.device !== device) return refuse('wrong-device', `desired state is for device "${state.device}", not "${device}"`);
  const hash = contentHash(state);
  // The floor is what runs now, or after a restart the highest generation ever trusted.
  const floor = current ? { generation: current.state.generation, contentHash: current.contentHash } : policy.highWater;
  if (floor) {
    if (state.generation < floor.generation) {
      return refuse('older-generation', `desired state generation ${state.generation} is older than the trusted generation ${floor.generation} (replayed or re-ordered: a rollback attack)`);
    }
    if (state.generation === floor.generation) {
      if (hash !== floor.contentHash) return refuse('replayed-generation', `desired state generation ${state.generation} differs from the trusted document of the same generation`);
      if (current) return { ok: true, trusted: current, changed: false };
    }
  }
  if (policy.nowMs !== null && state.expiresAt !== undefined && Date.parse(state.expiresAt) <= policy.nowMs) {
    return refuse('expired-desired-state', `desired state generation ${state.generation} expired at ${state.expiresAt} (delayed or frozen by someone in the way?); keeping what runs`);
  }
  if (state.components.length === 0 && state.removeAll !== true) {
    return refuse('empty-without-intent', 'desired state lists no components and does not say removeAll; refusing to remove everything');
  }
  // Release keys are pinned from the first signed document that names them, and never replaced by one.
  const pin = policy.releaseKeys.length === 0 && state.releaseKeys ? state.releaseKeys : null;
  const releaseKeys = pin ?? policy.releaseKeys;
  if (releaseKeys.length > 0) {
    let ring;
    try {
      ring = releaseKeyRing(releaseKeys);
    } catch {
      return refuse('malformed', 'desired state: payload.releaseKeys: not Ed25519 public keys (SPKI, base64)');
    }
    const running = new Set(current?.state.components.map((c) => contentHash(c)) ?? []);
    for (const component of state.components) {
      // A release that expired keeps running; it is never installed anew.
      const problem = componentReleaseProblem(component, state.releases ?? [], ring, running.has(contentHash(component)) ? null : policy.nowMs);
      if (problem) return refuse(problem.code, problem.message);
    }
  }
  return { ok: true, trusted: { state, contentHash: hash }, changed: true, ...(pin ? { pinReleaseKeys: pin } : {}) };
}
