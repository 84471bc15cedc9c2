import type { KeyObject } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { contentHash } from './canonical.ts';
import type { DesiredComponent } from './messages.ts';
import { Name, ReleaseSignature, Sha256Hex, type Component, type Template } from './resources.ts';
import { keyId, loadPublicKey, signValue, verifyValue } from './signing.ts';

/**
 * Releases, in the shape of TUF's targets metadata and Uptane's image repository: an operator
 * signs what a Deployment's template runs with a release key that can stay offline (or in CI).
 * The server (the "director") signs each device's desired state with its online key and carries
 * the release statements inside; the agent installs a component only when both signatures hold
 * and the component is exactly what the release names. A stolen online key can re-order, withhold
 * or re-sign documents, but it cannot invent a release.
 */
const closed = { additionalProperties: false } as const;

export const RELEASE_TYPE = 'driftless/release/v1';

/** One component as released: its name, version and the hash of everything that decides what runs. */
export const ReleasedComponent = Type.Object({ name: Name, version: Type.String({ minLength: 1, maxLength: 128 }), spec: Sha256Hex }, closed);
export type ReleasedComponent = Static<typeof ReleasedComponent>;

/** What a release key signs: the template of one Deployment, component by component. */
export const ReleaseStatement = Type.Object(
  {
    type: Type.Literal(RELEASE_TYPE),
    deployment: Name,
    version: Type.String({ minLength: 1, maxLength: 128 }),
    components: Type.Array(ReleasedComponent, { minItems: 1, maxItems: 1000 }),
    expires: Type.Optional(ReleaseSignature.properties.expires),
  },
  closed,
);
export type ReleaseStatement = Static<typeof ReleaseStatement>;

/** A statement with its signature, as the desired state carries it to the device. */
export const SignedRelease = Type.Object({ statement: ReleaseStatement, keyId: ReleaseSignature.properties.keyId, signature: ReleaseSignature.properties.signature }, closed);
export type SignedRelease = Static<typeof SignedRelease>;

/**
 * The hash of a component's spec: every field but its name and version (released apart) and what
 * the server adds (deployment, revision, resolved artifact). A field added to components later is
 * covered without a change here.
 */
export function componentSpecHash(component: Component | DesiredComponent): string {
  const { name: _name, version: _version, ...spec } = component as DesiredComponent;
  delete (spec as Partial<DesiredComponent>).deployment;
  delete (spec as Partial<DesiredComponent>).revision;
  delete (spec as Partial<DesiredComponent>).artifact;
  return contentHash(spec);
}

/** The statement a release key signs for a Deployment's template (its own `release` field left out). */
export function releaseStatementOf(deployment: string, template: Template, expires = template.release?.expires): ReleaseStatement {
  return {
    type: RELEASE_TYPE,
    deployment,
    version: template.version,
    components: template.components.map((c) => ({ name: c.name, version: c.version ?? template.version, spec: componentSpecHash(c) })),
    ...(expires === undefined ? {} : { expires }),
  };
}

/** Signs a template as released: what `driftless release sign` writes into `spec.template.release`. */
export function signRelease(privateKey: KeyObject, publicKeySpki: string, deployment: string, template: Template, expires?: string): ReleaseSignature {
  const statement = releaseStatementOf(deployment, template, expires);
  return { keyId: keyId(publicKeySpki), signature: signValue(privateKey, statement), ...(expires === undefined ? {} : { expires }) };
}

/** The signed release a template carries, ready to travel in a desired state; null when it is unsigned. */
export function signedReleaseOf(deployment: string, template: Template): SignedRelease | null {
  if (!template.release) return null;
  return { statement: releaseStatementOf(deployment, template), keyId: template.release.keyId, signature: template.release.signature };
}

/** Trusted release keys by key id. */
export type ReleaseKeyRing = ReadonlyMap<string, KeyObject>;

/** A key ring from public keys (SPKI, base64); throws on one that is not Ed25519. */
export function releaseKeyRing(publicKeys: readonly string[]): ReleaseKeyRing {
  return new Map(publicKeys.map((k) => [keyId(k), loadPublicKey(k)]));
}

export type ReleaseProblem = { code: 'release-unsigned' | 'release-mismatch' | 'release-expired'; message: string };

/** Whether a signed release is signed by a trusted release key; null when it is. */
export function releaseSignatureProblem(release: SignedRelease, keys: ReleaseKeyRing): ReleaseProblem | null {
  const what = `release ${release.statement.version} of deployment ${release.statement.deployment}`;
  const key = keys.get(release.keyId);
  if (!key) return { code: 'release-unsigned', message: `${what} is not signed by a release key: key ${release.keyId} is not one of the trusted release keys (${[...keys.keys()].join(', ')})` };
  if (!verifyValue(key, release.statement, release.signature)) return { code: 'release-unsigned', message: `${what} is not signed by a release key: the signature does not verify with release key ${release.keyId} (forged or altered)` };
  return null;
}

/** Whether a release's own expiry has passed at `nowMs`. */
export function releaseExpired(statement: ReleaseStatement, nowMs: number): boolean {
  return statement.expires !== undefined && Date.parse(statement.expires) <= nowMs;
}

/**
 * The device's check of one component it is told to run: a release for its deployment, signed by
 * a trusted release key, naming this component with this version and spec (an agent component's
 * artifact is bound by its digest, which the spec covers). `nowMs` null skips the release's expiry
 * (for a component that already runs). Pure; null when the component may be installed.
 */
export function componentReleaseProblem(component: DesiredComponent, releases: readonly SignedRelease[], keys: ReleaseKeyRing, nowMs: number | null): ReleaseProblem | null {
  const what = `component ${component.deployment}/${component.name}`;
  const candidates = releases.filter((r) => r.statement.deployment === component.deployment);
  if (candidates.length === 0) return { code: 'release-unsigned', message: `${what} is not signed by a release key: the desired state carries no signed release of deployment ${component.deployment}` };
  if (candidates.length > 1) return { code: 'release-mismatch', message: `${what}: the desired state carries ${candidates.length} releases of deployment ${component.deployment}, expected one` };
  const release = candidates[0]!;
  const unsigned = releaseSignatureProblem(release, keys);
  if (unsigned) return unsigned;
  const released = release.statement.components.find((c) => c.name === component.name);
  const version = release.statement.version;
  if (!released) return { code: 'release-mismatch', message: `${what} is not part of the signed release ${version} of deployment ${component.deployment}` };
  if (componentSpecHash(component) !== released.spec) {
    return { code: 'release-mismatch', message: `${what} differs from what release ${version} signed (spec ${componentSpecHash(component).slice(0, 12)}, released ${released.spec.slice(0, 12)})` };
  }
  // An agent component reports its artifact's version; its bytes are bound by the digest in the spec.
  if (component.agent) {
    if (component.artifact && component.artifact.sha256 !== component.agent.artifact) return { code: 'release-mismatch', message: `${what}: the artifact ${component.artifact.sha256} is not the released ${component.agent.artifact}` };
  } else if (component.version !== released.version) {
    return { code: 'release-mismatch', message: `${what} claims version ${component.version}, release ${version} signed version ${released.version}` };
  }
  if (nowMs !== null && releaseExpired(release.statement, nowMs)) return { code: 'release-expired', message: `${what}: release ${version} expired at ${release.statement.expires}; sign it again to install it` };
  return null;
}

/**
 * The server's check when a Deployment is applied, for a clear answer before any device refuses:
 * with release keys configured, the template must carry a valid, unexpired release signature.
 */
export function templateReleaseProblem(deployment: string, template: Template, keys: ReleaseKeyRing, nowMs: number): ReleaseProblem | null {
  const release = signedReleaseOf(deployment, template);
  if (!release) return { code: 'release-unsigned', message: `Deployment ${deployment}: spec.template is not signed by a release key; sign it with \`driftless release sign -f FILE --key KEY\`` };
  const problem = releaseSignatureProblem(release, keys);
  if (problem) return { code: problem.code, message: `Deployment ${deployment}: spec.template.release: ${problem.message}; the template may have changed after it was signed` };
  if (releaseExpired(release.statement, nowMs)) return { code: 'release-expired', message: `Deployment ${deployment}: spec.template.release expired at ${release.statement.expires}; sign it again` };
  return null;
}
