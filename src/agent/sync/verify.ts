import type { KeyObject } from 'node:crypto';
import { contentHash } from '../../protocol/canonical.ts';
import { SignedDesiredState, type DesiredState } from '../../protocol/messages.ts';
import { verifyValue } from '../../protocol/signing.ts';
import { problems } from '../../protocol/validate.ts';

/** Why a desired-state document was refused; each names an attack or an accident. */
export type Refusal = {
  code: 'malformed' | 'unsigned' | 'unknown-key' | 'bad-signature' | 'wrong-device' | 'older-generation' | 'replayed-generation' | 'empty-without-intent';
  message: string;
};

export type Trusted = { state: DesiredState; contentHash: string };

/**
 * Decides whether to trust a desired-state document. Pure: the pinned server key, this device's
 * name and what it trusts now are inputs. A document is trusted only if it is well-formed, signed
 * by the pinned key, meant for this device, newer than what we have (the same generation must be
 * byte-for-byte the same document), and not empty unless it says so.
 */
export function verifyDesiredState(
  document: unknown,
  pinned: { key: KeyObject; keyId: string },
  device: string,
  current: Trusted | null,
): { ok: true; trusted: Trusted; changed: boolean } | { ok: false; refusal: Refusal } {
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
  if (current) {
    if (state.generation < current.state.generation) {
      return refuse('older-generation', `desired state generation ${state.generation} is older than the trusted generation ${current.state.generation} (replay?)`);
    }
    if (state.generation === current.state.generation) {
      if (hash === current.contentHash) return { ok: true, trusted: current, changed: false };
      return refuse('replayed-generation', `desired state generation ${state.generation} differs from the trusted document of the same generation`);
    }
  }
  if (state.components.length === 0 && state.removeAll !== true) {
    return refuse('empty-without-intent', 'desired state lists no components and does not say removeAll; refusing to remove everything');
  }
  return { ok: true, trusted: { state, contentHash: hash }, changed: true };
}
