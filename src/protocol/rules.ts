import type { Problem } from './validate.ts';
import { pathToField } from './validate.ts';
import type { AppliedResource, DeploymentSpec, SiteSpec } from './resources.ts';

/**
 * Rules a schema cannot say: they run after the schema check, on the server and in the CLI,
 * and name the field like schema errors do.
 */
export function deploymentProblems(spec: DeploymentSpec): Problem[] {
  const out: Problem[] = [];
  const at = (path: (string | number)[], message: string) => out.push({ path: path.map(String), field: pathToField(path), message });
  const seen = new Set<string>();
  spec.template.components.forEach((component, i) => {
    const base = ['spec', 'template', 'components', i];
    if (seen.has(component.name)) at([...base, 'name'], `component "${component.name}" appears twice`);
    seen.add(component.name);
    if (component.agent) {
      // The agent itself: its release is the whole spec; what a workload needs does not apply.
      const extra = (['image', 'command', 'workingDir', 'ports', 'env', 'volumes', 'health'] as const).filter((k) => component[k] !== undefined);
      if (extra.length > 0) at([...base, extra[0]!], `an "agent" component has no "${extra.join('", "')}"`);
      if (spec.template.components.findIndex((c) => c.agent) !== i) at([...base, 'agent'], 'a template has at most one "agent" component');
    } else if (!component.image && !component.command) at(base, 'needs "image" (a container) or "command" (a native process)');
    const probes = (['http', 'tcp', 'command', 'running'] as const).filter((k) => component.health?.[k] !== undefined);
    if (probes.length > 1) at([...base, 'health'], `has ${probes.join(' and ')}; choose one probe`);
    component.ports?.forEach((mapping, j) => {
      const numbers = mapping.replace(/\/(tcp|udp)$/, '').split(':').map(Number);
      if (numbers.some((n) => n < 1 || n > 65535)) at([...base, 'ports', j], `"${mapping}" has a port outside 1-65535`);
    });
  });
  spec.strategy?.waves?.forEach((wave, i) => {
    if ((wave.devices === undefined) === (wave.percent === undefined)) at(['spec', 'strategy', 'waves', i], 'give exactly one of "devices" or "percent"');
  });
  return out;
}

/** A Site's time zone must be one the runtime knows: maintenance windows are read in it on every rollout tick. */
export function siteProblems(spec: SiteSpec | undefined): Problem[] {
  const zone = spec?.timeZone;
  if (zone === undefined) return [];
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return [];
  } catch {
    const path = ['spec', 'timeZone'];
    return [{ path, field: pathToField(path), message: `"${zone}" is not an IANA time zone (for example Europe/Berlin or America/New_York)` }];
  }
}

export function resourceProblems(resource: AppliedResource): Problem[] {
  if (resource.kind === 'Deployment') return deploymentProblems(resource.spec);
  if (resource.kind === 'Site') return siteProblems(resource.spec);
  return [];
}
