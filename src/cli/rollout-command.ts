import { DriftlessError } from '../protocol/errors.ts';
import type { RolloutView } from '../protocol/resources.ts';
import type { Api } from './api-client.ts';
import { printData, renderTable, type OutputFormat } from './output.ts';

type RolloutDetail = RolloutView & {
  fromRevision: number | null;
  timeline: { at: string; message: string }[];
  devices: { device: string; wave: number; status: string; why: string; detail: string | null }[];
  incident: { id: string; state: string; title: string } | null;
};

/** A rollout by its own name, or the latest rollout of a Deployment of that name. */
export async function findRollout(api: Api, name: string): Promise<RolloutView> {
  const all = await api.get<RolloutView[]>('/v1/rollouts');
  const exact = all.find((r) => r.name === name);
  if (exact) return exact;
  const latest = all.filter((r) => r.deployment === name).at(-1);
  if (latest) return latest;
  throw new DriftlessError('not-found', `no rollout or deployment named "${name}"`);
}

function waveTable(r: RolloutView): string {
  return renderTable([['WAVE', 'DEVICES', 'UPDATED', 'FAILED', 'STATE'], ...r.waves.map((w) => [String(w.index + 1), String(w.devices), String(w.updated), String(w.failed), w.state])]);
}

export async function rolloutStatusCommand(api: Api, name: string, format: OutputFormat): Promise<void> {
  const r = await findRollout(api, name);
  const status = { name: r.name, deployment: r.deployment, revision: r.revision, state: r.state, waves: r.waves, reason: r.reason };
  printData(status, format, () => []);
  if (format === 'json' || format === 'yaml') return;
  process.stdout.write(`rollout ${r.name} (deployment ${r.deployment}, revision ${r.revision}): ${r.state}${r.reason ? ` — ${r.reason}` : ''}\n`);
  process.stdout.write(waveTable(r));
}

export async function rolloutActionCommand(api: Api, action: 'pause' | 'resume' | 'abort', name: string): Promise<void> {
  const r = await findRollout(api, name);
  const after = await api.post<RolloutView>(`/v1/rollouts/${encodeURIComponent(r.name)}/${action}`, {});
  process.stdout.write(`rollout ${after.name}: ${after.state}${after.reason ? ` — ${after.reason}` : ''}\n`);
}

export async function rollbackCommand(api: Api, kind: string, name: string, toRevision: string | undefined): Promise<void> {
  if (kind !== 'deployment' && kind !== 'deployments') throw new DriftlessError('invalid-input', `rollback: "${kind}" cannot be rolled back (use: rollback deployment NAME)`);
  let revision: number | undefined;
  if (toRevision !== undefined) {
    revision = Number(toRevision);
    if (!Number.isInteger(revision) || revision < 1) throw new DriftlessError('invalid-input', `--to-revision: "${toRevision}" is not a revision number`);
  }
  const answer = await api.post<{ action: string; revision: number; rollout: string }>(`/v1/deployments/${encodeURIComponent(name)}/rollback`, revision === undefined ? {} : { toRevision: revision });
  if (answer.action === 'aborted') process.stdout.write(`deployment/${name}: rollout ${answer.rollout} aborted; the devices it reached return to revision ${answer.revision}\n`);
  else process.stdout.write(`deployment/${name}: rolling back as revision ${answer.revision} (rollout ${answer.rollout})\n`);
}

export async function describeRollout(api: Api, name: string): Promise<void> {
  const r = await api.get<RolloutDetail>(`/v1/rollouts/${encodeURIComponent((await findRollout(api, name)).name)}`);
  const lines = [
    `Name:        ${r.name}`,
    `Deployment:  ${r.deployment}, revision ${r.revision}${r.fromRevision ? ` (from revision ${r.fromRevision})` : ''}`,
    `State:       ${r.state}${r.reason ? ` — ${r.reason}` : ''}`,
    ...(r.incident ? [`Incident:    ${r.incident.id} (${r.incident.state}): ${r.incident.title}`] : []),
    'Waves:',
    ...waveTable(r).trimEnd().split('\n').map((l) => `  ${l}`),
    'Timeline:',
    ...r.timeline.map((t) => `  ${t.at}  ${t.message}`),
    'Devices:',
    ...(r.devices.length === 0 ? ['  none yet'] : renderTable([['DEVICE', 'WAVE', 'STATUS', 'WHY', 'DETAIL'], ...r.devices.map((d) => [d.device, String(d.wave), d.status, d.why, d.detail ?? ''])]).trimEnd().split('\n').map((l) => `  ${l}`)),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

export async function incidentCommand(api: Api, name: string): Promise<void> {
  const r = await api.get<RolloutDetail>(`/v1/rollouts/${encodeURIComponent((await findRollout(api, name)).name)}`);
  if (!r.incident) throw new DriftlessError('not-found', `rollout ${r.name} has no incident (it did not halt)`);
  const response = await api.text(`/v1/incidents/${encodeURIComponent(r.incident.id)}/markdown`);
  process.stdout.write(response);
}
