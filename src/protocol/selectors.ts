import { DriftlessError } from './errors.ts';
import type { Labels, Selector } from './resources.ts';

/** A parsed `-l` selector: every requirement must hold. */
export type LabelRequirement = { key: string; op: '=' | '!=' | 'exists' | '!exists'; value?: string };

/** Parses kubectl-style label selectors: `tier=store,region!=eu,gpu,!legacy`. */
export function parseLabelSelector(text: string): LabelRequirement[] {
  const out: LabelRequirement[] = [];
  for (const raw of text.split(',')) {
    const part = raw.trim();
    if (!part) continue;
    const match = /^(!?)([A-Za-z0-9][A-Za-z0-9._/-]*)(?:\s*(==|=|!=)\s*([A-Za-z0-9._/-]*))?$/.exec(part);
    if (!match) throw new DriftlessError('invalid-input', `label selector: cannot read "${part}" (write key=value, key!=value, key or !key)`);
    const [, negate, key, op, value] = match;
    if (op && negate) throw new DriftlessError('invalid-input', `label selector: "${part}" mixes "!" with "${op}"`);
    if (!op) out.push({ key: key!, op: negate ? '!exists' : 'exists' });
    else out.push({ key: key!, op: op === '!=' ? '!=' : '=', value: value ?? '' });
  }
  return out;
}

export function matchesRequirements(labels: Labels, requirements: readonly LabelRequirement[]): boolean {
  return requirements.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    switch (r.op) {
      case '=':
        return has && labels[r.key] === r.value;
      case '!=':
        return !has || labels[r.key] !== r.value;
      case 'exists':
        return has;
      case '!exists':
        return !has;
    }
  });
}

/** Whether a Deployment's selector picks a device. An empty selector picks every device. */
export function selectorMatches(selector: Selector, device: { labels: Labels; site: string | null }): boolean {
  if (selector.sites && selector.sites.length > 0 && (device.site === null || !selector.sites.includes(device.site))) return false;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (device.labels[key] !== value) return false;
  }
  return true;
}
