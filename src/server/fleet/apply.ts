import { contentHash } from '../../protocol/canonical.ts';
import { DriftlessError } from '../../protocol/errors.ts';
import type { AppliedResource, DeploymentResource, DeviceResource, SiteResource } from '../../protocol/resources.ts';
import { releaseKeyRing, templateReleaseProblem } from '../../protocol/release.ts';
import { readReleaseKeys } from '../desired/release-keys.ts';
import type { RolloutEngine } from '../rollout/rollout-engine.ts';
import type { Store } from '../store/store.ts';

export type ApplyOutcome = { kind: string; name: string; action: 'created' | 'configured' | 'unchanged'; revision?: number };

/**
 * Applies resources inside the caller's transaction: all of them or, on the first error, none.
 * A Deployment whose template changed gets a new immutable revision, handed to the rollout engine.
 */
export async function applyResources(store: Store, rollouts: RolloutEngine, resources: readonly AppliedResource[], nowIso: string): Promise<ApplyOutcome[]> {
  const out: ApplyOutcome[] = [];
  for (const resource of resources) {
    switch (resource.kind) {
      case 'Site':
        out.push(await applySite(store, resource, nowIso));
        break;
      case 'Device':
        out.push(await applyDevice(store, resource, nowIso));
        break;
      case 'Deployment':
        out.push(await applyDeployment(store, rollouts, resource, nowIso));
        break;
    }
  }
  return out;
}

async function applySite(store: Store, resource: SiteResource, nowIso: string): Promise<ApplyOutcome> {
  const name = resource.metadata.name;
  const existing = await store.getSite(name);
  const labels = resource.metadata.labels ?? {};
  const spec = resource.spec ?? {};
  if (existing && contentHash([existing.labels, existing.spec]) === contentHash([labels, spec])) return { kind: 'Site', name, action: 'unchanged' };
  await store.putSite({ name, labels, spec, createdAt: existing?.createdAt ?? nowIso, updatedAt: nowIso });
  return { kind: 'Site', name, action: existing ? 'configured' : 'created' };
}

async function applyDevice(store: Store, resource: DeviceResource, nowIso: string): Promise<ApplyOutcome> {
  const name = resource.metadata.name;
  const device = await store.getDevice(name);
  if (!device) throw new DriftlessError('not-found', `Device "${name}" is not enrolled: devices are registered by their agent, then labelled here`);
  const labels = resource.metadata.labels ?? device.labels;
  const site = resource.spec?.site ?? device.site;
  if (contentHash([labels, site]) === contentHash([device.labels, device.site])) return { kind: 'Device', name, action: 'unchanged' };
  if (site !== null) await ensureSite(store, site, nowIso);
  await store.updateDevice(name, { labels, site });
  return { kind: 'Device', name, action: 'configured' };
}

async function applyDeployment(store: Store, rollouts: RolloutEngine, resource: DeploymentResource, nowIso: string): Promise<ApplyOutcome> {
  const name = resource.metadata.name;
  const labels = resource.metadata.labels ?? {};
  await checkAgentReleases(store, resource);
  await checkReleaseSignature(store, resource, nowIso);
  const existing = await store.getDeployment(name);
  const templateHash = contentHash(resource.spec.template);
  const latest = existing ? await store.getRevision(name, existing.revision) : null;
  const newRevision = !latest || latest.templateHash !== templateHash;

  if (existing && !newRevision && contentHash([existing.spec, existing.labels]) === contentHash([resource.spec, labels])) {
    return { kind: 'Deployment', name, action: 'unchanged', revision: existing.revision };
  }
  const revision = newRevision ? (existing?.revision ?? 0) + 1 : existing!.revision;
  const record = {
    name,
    labels,
    spec: resource.spec,
    revision,
    targetRevision: existing?.targetRevision ?? 0,
    createdAt: existing?.createdAt ?? nowIso,
    updatedAt: nowIso,
  };
  if (newRevision) await store.insertRevision({ deployment: name, revision, templateHash, template: resource.spec.template, createdAt: nowIso });
  await store.putDeployment(record);
  if (newRevision) await rollouts.release(store, record, revision, nowIso);
  return { kind: 'Deployment', name, action: existing ? 'configured' : 'created', revision };
}

/** An agent component names an uploaded artifact, and the version it states (if any) is the artifact's. */
async function checkAgentReleases(store: Store, resource: DeploymentResource): Promise<void> {
  for (const [i, component] of resource.spec.template.components.entries()) {
    if (!component.agent) continue;
    const field = `Deployment ${resource.metadata.name}: spec.template.components[${i}]`;
    const artifact = await store.getArtifact(component.agent.artifact);
    if (!artifact) throw new DriftlessError('invalid-input', `${field}.agent.artifact: no artifact ${component.agent.artifact} was uploaded; push it first with \`driftless artifact push\``);
    if (component.version !== undefined && component.version !== artifact.version) {
      throw new DriftlessError('invalid-input', `${field}.version: "${component.version}" differs from the artifact's version "${artifact.version}"; leave it out or make them equal`);
    }
  }
}

/**
 * With release keys configured, a template must be signed by one of them, as it is: devices that
 * pinned the keys would refuse it anyway, and the operator hears it now, in one line.
 */
async function checkReleaseSignature(store: Store, resource: DeploymentResource, nowIso: string): Promise<void> {
  const keys = await readReleaseKeys(store);
  if (keys.length === 0) return;
  const problem = templateReleaseProblem(resource.metadata.name, resource.spec.template, releaseKeyRing(keys), Date.parse(nowIso));
  if (problem) throw new DriftlessError(problem.code, problem.message);
}

/** A device may name a site nobody has described yet; the site then exists with no labels. */
export async function ensureSite(store: Store, name: string, nowIso: string): Promise<void> {
  if (!(await store.getSite(name))) await store.putSite({ name, labels: {}, spec: {}, createdAt: nowIso, updatedAt: nowIso });
}
