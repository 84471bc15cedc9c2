import type { KeyObject } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { sha256Hex } from './canonical.ts';
import { Sha256Hex } from './resources.ts';
import { signValue, verifyValue } from './signing.ts';

/**
 * Artifacts: bytes an operator uploads (an agent release, later an OS bundle), named by their
 * SHA-256 and signed over what they claim to be. A device installs one only after both the hash of
 * the bytes it received and the signature over `{ name, version, sha256, size }` check out.
 */
const closed = { additionalProperties: false } as const;

/** What is signed: the claim that these bytes are this release. */
export const ArtifactStatement = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' }),
    version: Type.String({ minLength: 1, maxLength: 128 }),
    sha256: Sha256Hex,
    size: Type.Integer({ minimum: 0 }),
  },
  closed,
);
export type ArtifactStatement = Static<typeof ArtifactStatement>;

/** An artifact as the server describes it to devices (inside the signed desired state) and to operators. */
export const ArtifactRef = Type.Object(
  {
    name: ArtifactStatement.properties.name,
    version: ArtifactStatement.properties.version,
    sha256: Sha256Hex,
    size: Type.Integer({ minimum: 0 }),
    signature: Type.String({ pattern: '^[A-Za-z0-9+/=]+$', maxLength: 4096 }),
  },
  closed,
);
export type ArtifactRef = Static<typeof ArtifactRef>;

export function statementOf(ref: ArtifactStatement): ArtifactStatement {
  return { name: ref.name, version: ref.version, sha256: ref.sha256, size: ref.size };
}

export function signArtifact(privateKey: KeyObject, statement: ArtifactStatement): string {
  return signValue(privateKey, statementOf(statement));
}

/**
 * The one check a device makes before installing an artifact: the bytes are the ones named, and
 * the name is signed by the key it trusts (the server's pinned key). Returns why not, or null.
 * With release keys, the operator's signed release covers the artifact too: its statement holds
 * the agent component's digest, and the agent checks the desired `artifact` names that digest
 * before it gets here (protocol/release.ts), so a stolen server key cannot swap the bytes.
 */
export function artifactProblem(ref: ArtifactRef, bytes: Uint8Array, trustedKey: KeyObject): string | null {
  if (bytes.length !== ref.size) return `artifact ${ref.name} ${ref.version} is ${bytes.length} bytes, expected ${ref.size}`;
  const actual = sha256Hex(bytes);
  if (actual !== ref.sha256) return `artifact ${ref.name} ${ref.version} has SHA-256 ${actual}, expected ${ref.sha256}`;
  if (!verifyValue(trustedKey, statementOf(ref), ref.signature)) return `artifact ${ref.name} ${ref.version}: the signature does not verify with the trusted key`;
  return null;
}
