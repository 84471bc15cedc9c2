import { contentHash } from '../../protocol/canonical.ts';
import type { ArtifactRef } from '../../protocol/artifacts.ts';
import type { DesiredComponent, DesiredState } from '../../protocol/messages.ts';
import { signedReleaseOf, type SignedRelease } from '../../protocol/release.ts';
import type { Labels, Selector, Template } from '../../protocol/resources.ts';
import { selectorMatches } from '../../protocol/selectors.ts';

/** A Deployment as the desired-state computation needs it: its selector and the template each device gets. */
export type DeploymentTarget = {
  name: string;
  selector: Selector;
  /**
   * The revision and template this device should run, as decided by the rollout engine
   * (or null when the engine holds this device back from every revision).
   */
  releaseFor(device: string): { revision: number; template: Template } | null;
};

export type DeviceFacts = { name: string; labels: Labels; site: string | null };

/**
 * The components a device must run: one entry per component of every Deployment that selects it,
 * in a stable order. Pure: the same inputs always give the same list.
 */
export function desiredComponentsFor(device: DeviceFacts, deployments: readonly DeploymentTarget[], artifactOf: (sha256: string) => ArtifactRef | null = () => null): DesiredComponent[] {
  const out: DesiredComponent[] = [];
  for (const deployment of deployments) {
    if (!selectorMatches(deployment.selector, device)) continue;
    const release = deployment.releaseFor(device.name);
    if (!release) continue;
    for (const component of release.template.components) {
      const desired: DesiredComponent = { ...component, deployment: deployment.name, revision: release.revision, version: component.version ?? release.template.version };
      // The agent's release travels with its signed description; its version is the release's own.
      const artifact = component.agent ? artifactOf(component.agent.artifact) : null;
      if (artifact) Object.assign(desired, { artifact, version: artifact.version });
      out.push(desired);
    }
  }
  return out.sort((a, b) => (a.deployment === b.deployment ? cmp(a.name, b.name) : cmp(a.deployment, b.deployment)));
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The part of a desired state whose change means a new generation; the time it was issued is not. */
export function desiredContentHash(components: readonly DesiredComponent[], trust: Pick<DocumentTrust, 'releases' | 'releaseKeys'> = {}): string {
  // Absent and empty are the same document: a server without releases keeps the hashes it had.
  return contentHash({ components, releases: trust.releases?.length ? trust.releases : undefined, releaseKeys: trust.releaseKeys?.length ? trust.releaseKeys : undefined });
}

/**
 * The signed releases the device's components come from, one per Deployment that selects it, in
 * the order of `desiredComponentsFor`. An unsigned template contributes none (its components are
 * then refused by a device that pinned release keys).
 */
export function desiredReleasesFor(device: DeviceFacts, deployments: readonly DeploymentTarget[]): SignedRelease[] {
  const out: SignedRelease[] = [];
  for (const deployment of deployments) {
    if (!selectorMatches(deployment.selector, device)) continue;
    const release = deployment.releaseFor(device.name);
    const signed = release ? signedReleaseOf(deployment.name, release.template) : null;
    if (signed) out.push(signed);
  }
  return out.sort((a, b) => cmp(a.statement.deployment, b.statement.deployment));
}

/**
 * What a document carries for the device's trust beyond its components: the releases and release
 * keys (when the server has them), its expiry, and the time before which an unchanged document is
 * re-issued anyway so that it never expires while the server is up.
 */
export type DocumentTrust = { releases?: SignedRelease[]; releaseKeys?: string[]; expiresAt?: string; renewBefore?: string };

/**
 * The next desired-state document for a device, or null when nothing changed. The generation only
 * ever grows, and an empty list is marked as intended so the agent can tell it from a lost one.
 */
export function nextDesiredState(
  device: string,
  components: DesiredComponent[],
  previous: { generation: number; contentHash: string; expiresAt?: string | undefined } | null,
  issuedAt: string,
  trust: DocumentTrust = {},
): { state: DesiredState; contentHash: string } | null {
  const hash = desiredContentHash(components, trust);
  // Renewal is a new generation like any change: the device's floor only rises, and the same generation never has two contents.
  const renew = previous !== null && trust.renewBefore !== undefined && (previous.expiresAt === undefined || Date.parse(previous.expiresAt) <= Date.parse(trust.renewBefore));
  if (previous && previous.contentHash === hash && !renew) return null;
  const state: DesiredState = { device, generation: (previous?.generation ?? 0) + 1, issuedAt, components };
  if (components.length === 0) state.removeAll = true;
  if (trust.expiresAt !== undefined) state.expiresAt = trust.expiresAt;
  if (trust.releases && trust.releases.length > 0) state.releases = trust.releases;
  if (trust.releaseKeys && trust.releaseKeys.length > 0) state.releaseKeys = trust.releaseKeys;
  return { state, contentHash: hash };
}
