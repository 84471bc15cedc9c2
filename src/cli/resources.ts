import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { DriftlessError } from '../protocol/errors.ts';
import { parseManifest } from '../protocol/manifest.ts';
import type { AppliedResource, DeploymentView, DeviceView, DriftEntry, RolloutView, SiteView } from '../protocol/resources.ts';
import { parseLabelSelector } from '../protocol/selectors.ts';
import type { Api } from './api-client.ts';
import { age, printData, type OutputFormat } from './output.ts';
import { describeRollout } from './rollout-command.ts';

/** Reads every manifest named by -f (a file, or the .yaml/.yml/.json files of a directory, in name order). */
export function readManifests(path: string): AppliedResource[] {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    throw new DriftlessError('invalid-input', `-f: ${path}: no such file or directory`);
  }
  const files = stat.isDirectory()
    ? readdirSync(path).filter((f) => /\.(ya?ml|json)$/.test(f)).sort().map((f) => join(path, f))
    : [path];
  const resources = files.flatMap((file) => parseManifest(readFileSync(file, 'utf8'), file));
  if (resources.length === 0) throw new DriftlessError('invalid-input', `-f: ${path}: no resources found`);
  return resources;
}

export async function applyCommand(api: Api, path: string, format: OutputFormat): Promise<void> {
  const resources = readManifests(path);
  const answer = await api.post<{ results: { kind: string; name: string; action: string; revision?: number }[] }>('/v1/apply', { resources });
  if (format === 'json') return void process.stdout.write(`${JSON.stringify(answer.results, null, 2)}\n`);
  for (const r of answer.results) {
    const revision = r.revision !== undefined && r.action !== 'unchanged' ? ` (revision ${r.revision})` : '';
    process.stdout.write(`${r.kind.toLowerCase()}/${r.name} ${r.action}${revision}\n`);
  }
}

const kinds = {
  devices: 'devices',
  device: 'devices',
  sites: 'sites',
  site: 'sites',
  deployments: 'deployments',
  deployment: 'deployments',
  rollouts: 'rollouts',
  rollout: 'rollouts',
} as const;

export function resourceKind(word: string): (typeof kinds)[keyof typeof kinds] {
  const kind = (kinds as Record<string, (typeof kinds)[keyof typeof kinds]>)[word];
  if (!kind) throw new DriftlessError('invalid-input', `unknown resource type "${word}" (use devices, sites, deployments or rollouts)`);
  return kind;
}

export async function getCommand(api: Api, word: string, name: string | undefined, opts: { selector?: string; format: OutputFormat }): Promise<void> {
  const kind = resourceKind(word);
  if (opts.selector !== undefined) {
    if (kind !== 'devices') throw new DriftlessError('invalid-input', '-l: label selectors apply to devices');
    parseLabelSelector(opts.selector);
  }
  const query = opts.selector ? `?selector=${encodeURIComponent(opts.selector)}` : '';
  const path = name ? `/v1/${kind}/${encodeURIComponent(name)}` : `/v1/${kind}${query}`;
  const data = await api.get<unknown>(path);
  const items = (name ? [data] : data) as unknown[];
  const now = Date.now();
  printData(name ? data : items, opts.format, () => {
    switch (kind) {
      case 'devices': {
        const wide = opts.format === 'wide';
        const head = ['NAME', 'SITE', 'ONLINE', 'COMPONENTS', 'STATE', 'LAST SEEN', ...(wide ? ['LABELS', 'GENERATION'] : [])];
        return [
          head,
          ...(items as DeviceView[]).map((d) => [
            d.name,
            d.site ?? '-',
            d.online ? 'yes' : 'no',
            d.components.map((c) => `${c.name}@${c.version ?? '-'}`).join(',') || '-',
            summariseStates(d),
            age(d.lastSeen, now),
            ...(wide ? [Object.entries(d.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-', `${d.appliedGeneration}/${d.generation}`] : []),
          ]),
        ];
      }
      case 'sites':
        return [['NAME', 'DEVICES', 'TIME ZONE', 'LABELS'], ...(items as SiteView[]).map((s) => [s.name, String(s.devices), s.spec.timeZone ?? '-', Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-'])];
      case 'deployments':
        return [['NAME', 'VERSION', 'REVISION', 'SELECTOR', 'AGE'], ...(items as DeploymentView[]).map((d) => [d.name, d.spec.template.version, String(d.revision), selectorText(d), age(d.createdAt, now)])];
      case 'rollouts':
        return [['NAME', 'DEPLOYMENT', 'REVISION', 'STATE', 'UPDATED', 'FAILED', 'AGE'], ...(items as RolloutView[]).map((r) => {
          const devices = r.waves.reduce((n, w) => n + w.devices, 0);
          return [r.name, r.deployment, String(r.revision), r.state, `${r.waves.reduce((n, w) => n + w.updated, 0)}/${devices}`, String(r.waves.reduce((n, w) => n + w.failed, 0)), age(r.createdAt, now)];
        })];
    }
  });
}

function summariseStates(d: DeviceView): string {
  if (d.components.length === 0) return '-';
  const counts = new Map<string, number>();
  for (const c of d.components) counts.set(c.state, (counts.get(c.state) ?? 0) + 1);
  return [...counts].map(([s, n]) => (d.components.length === 1 ? s : `${n} ${s}`)).join(',');
}

function selectorText(d: DeploymentView): string {
  const parts = Object.entries(d.spec.selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  if (d.spec.selector.sites?.length) parts.push(`sites=${d.spec.selector.sites.join('|')}`);
  return parts.join(',') || '(all devices)';
}

export async function describeCommand(api: Api, word: string, name: string): Promise<void> {
  const kind = resourceKind(word);
  if (kind === 'rollouts') return describeRollout(api, name);
  const data = await api.get<Record<string, unknown>>(`/v1/${kind}/${encodeURIComponent(name)}`);
  if (kind === 'devices') {
    const d = data as unknown as DeviceView & { drift: DriftEntry[]; events: { seq: number; at: string; type: string; component?: string; message: string }[] };
    const lines = [
      `Name:        ${d.name}`,
      `Site:        ${d.site ?? '-'}`,
      `Status:      ${d.status}, ${d.online ? 'online' : 'offline'}; last seen ${d.lastSeen ?? 'never'}`,
      `Labels:      ${Object.entries(d.labels).map(([k, v]) => `${k}=${v}`).join(', ') || '-'}`,
      `Generation:  applied ${d.appliedGeneration} of ${d.generation}`,
      `Facts:       ${Object.entries(d.facts).map(([k, v]) => `${k}=${v}`).join(', ') || '-'}`,
      'Components:',
      ...d.components.map((c) => `  ${c.deployment}/${c.name}: desired ${c.desiredVersion ?? '-'}, running ${c.version ?? '-'}, ${c.state}${c.reason ? ` (${c.reason})` : ''}${c.detail ? `: ${c.detail}` : ''}`),
      'Drift:',
      ...(d.drift.length ? d.drift.map((e) => `  ${e.component}: ${e.reason}: ${e.detail}`) : ['  none']),
      'Recent events:',
      ...(d.events.length ? d.events.slice(0, 15).map((e) => `  ${e.at}  ${e.type}${e.component ? ` ${e.component}` : ''}: ${e.message}`) : ['  none']),
    ];
    return void process.stdout.write(`${lines.join('\n')}\n`);
  }
  process.stdout.write(stringify(data));
}

export async function driftCommand(api: Api, format: OutputFormat): Promise<void> {
  const answer = await api.get<{ summary: string; entries: DriftEntry[] }>('/v1/drift');
  if (format === 'json' || format === 'yaml') return printData(answer.entries, format, () => []);
  const now = Date.now();
  const rows = [['DEVICE', 'SITE', 'COMPONENT', 'DESIRED', 'ACTUAL', 'REASON', 'SINCE', 'DETAIL'], ...answer.entries.map((e) => [e.device, e.site ?? '-', `${e.deployment}/${e.component}`, e.desiredVersion ?? '-', e.version ?? '-', e.reason, age(e.since, now), e.detail])];
  if (answer.entries.length > 0) printData(null, 'table', () => rows);
  process.stdout.write(`${answer.summary}\n`);
}
