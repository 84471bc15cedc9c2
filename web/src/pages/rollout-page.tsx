import { useEffect, useMemo, useState } from 'react';
import { Link } from 'wouter';
import { encodeName } from '../api/api-client.ts';
import type { Incident, RolloutDetail } from '../api/resources.ts';
import { ConfirmButton } from '../components/confirm-dialog.tsx';
import { ErrorNotice, EmptyState, Loading } from '../components/notices.tsx';
import { PageHeader } from '../components/page-header.tsx';
import { StateBadge } from '../components/state-badge.tsx';
import { TableScroll } from '../components/table-scroll.tsx';
import { TimeAgo, Timestamp } from '../components/time-ago.tsx';
import { TimelineList } from '../components/timeline-list.tsx';
import { formatCount } from '../format/quantity.ts';
import { usePoll } from '../live/use-poll.ts';
import { canOperate, useApi, useSession } from '../session/session.tsx';
import { rolloutSize, waveProgress, type WaveProgress } from './rollout-waves.ts';

/** Devices listed at once on the page; a 10,000-device rollout is filtered, not scrolled. */
const DEVICE_ROWS = 200;

type DeploymentSummary = { name: string; revision: number; targetRevision: number };

/** One rollout, live: its health gate, wave by wave progress, the operator's levers and what happened. */
export function RolloutPage({ name }: { name: string }) {
  // A large rollout lists only its failed devices on each poll: every 2 s, 10,000 rows would be megabytes.
  const [large, setLarge] = useState(true);
  const { data: rollout, error, refresh } = usePoll<RolloutDetail>(`/v1/rollouts/${encodeName(name)}?devices=${large ? 'failed' : 'all'}`);
  const total = rollout ? rolloutSize(rollout.waves) : null;
  useEffect(() => {
    if (total !== null) setLarge(total > DEVICE_ROWS);
  }, [total]);
  const incidentId = rollout?.incident?.id ?? null;
  const { data: incident } = usePoll<Incident>(incidentId ? `/v1/incidents/${encodeName(incidentId)}` : null);
  const { data: deployment } = usePoll<DeploymentSummary>(rollout ? `/v1/deployments/${encodeName(rollout.deployment)}` : null);

  return (
    <>
      <PageHeader
        title={name}
        subtitle={
          rollout ? (
            <>
              Deployment {rollout.deployment}: revision {rollout.fromRevision ?? '—'} → {rollout.revision} · started <TimeAgo at={rollout.createdAt} />
            </>
          ) : undefined
        }
      >
        {rollout ? <StateBadge state={rollout.state} testId="rollout-state" /> : null}
      </PageHeader>
      <p className="crumbs">
        <Link href="/rollouts">← All rollouts</Link>
      </p>
      <ErrorNotice error={error} />
      {!rollout ? (
        error ? null : <Loading what="the rollout" />
      ) : (
        <Rollout rollout={rollout} incident={incident ?? null} deployment={deployment ?? null} onChanged={refresh} />
      )}
    </>
  );
}

function Rollout({ rollout, incident, deployment, onChanged }: { rollout: RolloutDetail; incident: Incident | null; deployment: DeploymentSummary | null; onChanged: () => void }) {
  const waves = useMemo(() => waveProgress(rollout.waves, rollout.progress), [rollout.waves, rollout.progress]);
  return (
    <>
      <div className="grid grid--two">
        <section className="card" aria-labelledby="gate">
          <h2 id="gate">Health gate</h2>
          <p className="verdict">
            <StateBadge state={rollout.state} /> <span>{rollout.reason ?? gateWords(rollout.state)}</span>
          </p>
          <p className="muted small">
            Last change <TimeAgo at={rollout.updatedAt} />
          </p>
        </section>
        <Actions rollout={rollout} deployment={deployment} onChanged={onChanged} />
      </div>

      <section className="card" aria-labelledby="waves">
        <h2 id="waves">Waves</h2>
        <TableScroll label="Waves table">
          <table className="table">
            <thead>
              <tr>
                <th scope="col" className="num">
                  Wave
                </th>
                <th scope="col" className="num">
                  Devices
                </th>
                <th scope="col" className="num">
                  Updated
                </th>
                <th scope="col" className="num">
                  Failed
                </th>
                <th scope="col" className="num">
                  Waiting
                </th>
                <th scope="col" className="num">
                  Offline
                </th>
                <th scope="col">State</th>
              </tr>
            </thead>
            <tbody>
              {waves.map((w) => (
                <tr key={w.index} data-testid="wave-row">
                  <td className="num">{w.index + 1}</td>
                  <td className="num">{formatCount(w.devices)}</td>
                  <td className="num">{formatCount(w.updated)}</td>
                  <td className={w.failed > 0 ? 'num text-bad' : 'num'}>{formatCount(w.failed)}</td>
                  <td className="num">{formatCount(w.waiting)}</td>
                  <td className="num">{formatCount(w.offline)}</td>
                  <td>
                    <StateBadge state={w.state} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
        <div className="wave-bars" aria-hidden="true">
          {waves.map((w) => (
            <div key={w.index} className="wave-bar">
              <span className="wave-bar__label">wave {w.index + 1}</span>
              <span className="bar">
                {segments(w).map(([tone, count]) => (count > 0 ? <span key={tone} className={`bar__seg tone--${tone}`} style={{ flexGrow: count }} /> : null))}
              </span>
            </div>
          ))}
          <p className="legend small muted">
            <span><span className="legend__swatch tone--good" /> updated</span>
            <span><span className="legend__swatch tone--bad" /> failed</span>
            <span><span className="legend__swatch tone--busy" /> waiting</span>
            <span><span className="legend__swatch tone--idle" /> offline</span>
          </p>
        </div>
      </section>

      {rollout.incident ? (
        <section className="card card--alert" aria-labelledby="incident">
          <h2 id="incident">
            Incident: <Link href={`/incidents/${encodeName(rollout.incident.id)}`}>{rollout.incident.title}</Link> <StateBadge state={rollout.incident.state} />
          </h2>
          {incident?.timeline ? <TimelineList label="Incident timeline" entries={incident.timeline} /> : <Loading what="the incident timeline" />}
        </section>
      ) : null}

      {rollout.incident ? (
        // The incident's timeline above already tells the rollout's story; its own stays one click away.
        <details className="card">
          <summary>
            <h2 className="inline-heading">Rollout timeline</h2>
          </summary>
          <TimelineList label="Rollout timeline" entries={rollout.timeline} />
        </details>
      ) : (
        <section className="card" aria-labelledby="rollout-timeline">
          <h2 id="rollout-timeline">Rollout timeline</h2>
          {rollout.timeline.length === 0 ? <EmptyState>Nothing has happened yet.</EmptyState> : <TimelineList label="Rollout timeline" entries={rollout.timeline} />}
        </section>
      )}

      <RolloutDevices rollout={rollout} />
    </>
  );
}

/** A wave's devices by where they stand, in bar order; what is left has not been reached yet. */
const segments = (w: WaveProgress): [string, number][] => [
  ['good', w.updated],
  ['bad', w.failed],
  ['busy', w.waiting],
  ['idle', w.offline],
];

const gateWords = (state: string): string =>
  ({
    pending: 'Waiting to start.',
    progressing: 'Passing: failures stay under the threshold.',
    paused: 'Paused: no new devices are released.',
    halted: 'Halted: the failure threshold was crossed.',
    'rolled-back': 'Rolled back to the previous revision.',
    complete: 'Passed: every wave is healthy.',
    superseded: 'Superseded by a newer revision.',
  })[state] ?? state;

/** Pause, resume, abort, roll back: for operators and admins, each only when it applies. */
function Actions({ rollout, deployment, onChanged }: { rollout: RolloutDetail; deployment: DeploymentSummary | null; onChanged: () => void }) {
  const { whoami } = useSession();
  const api = useApi();
  if (!canOperate(whoami?.role)) return null;
  const path = `/v1/rollouts/${encodeName(rollout.name)}`;
  const act = (url: string) => async () => {
    await api.post(url, {});
    onChanged();
  };
  const state = rollout.state;
  const canPause = state === 'progressing' || state === 'pending';
  const canResume = state === 'paused' || state === 'halted';
  const canAbort = state === 'pending' || state === 'progressing' || state === 'paused' || state === 'halted';
  // Rolling back concerns the deployment (see rollback.ts): while this rollout runs it aborts it and
  // sends the devices it reached back; once it completed and is the stable revision, the revision
  // before it goes out again as a new rollout. An older or superseded rollout has nothing to undo.
  const running = canAbort && deployment !== null && deployment.revision === rollout.revision;
  const stable = state === 'complete' && deployment !== null && deployment.targetRevision === rollout.revision;
  const canRollBack = rollout.fromRevision !== null && (running || stable);
  const none = !canPause && !canResume && !canAbort && !canRollBack;
  return (
    <section className="card" aria-labelledby="actions">
      <h2 id="actions">Actions</h2>
      {none ? (
        <EmptyState>This rollout is {state}; nothing is left to do on it.</EmptyState>
      ) : (
        <div className="actions">
          {canPause ? <ConfirmButton label="Pause" title={`Pause ${rollout.name}?`} description="No further devices are released until the rollout is resumed. Devices already updating carry on." onConfirm={act(`${path}/pause`)} /> : null}
          {canResume ? (
            <ConfirmButton
              label="Resume"
              title={`Resume ${rollout.name}?`}
              description={state === 'halted' ? 'The failures that halted it are accepted, and the next waves go out. New failures count afresh.' : 'The rollout carries on with its next devices.'}
              onConfirm={act(`${path}/resume`)}
            />
          ) : null}
          {canAbort ? <ConfirmButton label="Abort" danger title={`Abort ${rollout.name}?`} description="The rollout stops and every device it reached goes back to the previous revision." onConfirm={act(`${path}/abort`)} /> : null}
          {canRollBack ? (
            <ConfirmButton
              label="Roll back"
              danger
              title={`Roll back ${rollout.deployment}?`}
              description={
                running
                  ? `This rollout stops and every device it reached goes back to revision ${rollout.fromRevision}.`
                  : `The revision before ${rollout.revision} goes out again as a new revision, wave by wave like any change.`
              }
              onConfirm={act(`/v1/deployments/${encodeName(rollout.deployment)}/rollback`)}
            />
          ) : null}
        </div>
      )}
    </section>
  );
}

function RolloutDevices({ rollout }: { rollout: RolloutDetail }) {
  const [status, setStatus] = useState('');
  const statuses = useMemo(() => [...new Set(rollout.devices.map((d) => d.status))].sort(), [rollout.devices]);
  const shown = status ? rollout.devices.filter((d) => d.status === status) : rollout.devices;
  // A large rollout's page is sent only its failed and reverted devices (see RolloutPage).
  const onlyFailed = rolloutSize(rollout.waves) > DEVICE_ROWS;
  return (
    <section className="card" aria-labelledby="rollout-devices">
      <div className="card__head">
        <h2 id="rollout-devices">
          {onlyFailed ? 'Failed devices' : 'Devices'} <span className="muted">({formatCount(rollout.devices.length)})</span>
        </h2>
        <div className="field field--inline">
          <label htmlFor="device-status-filter">Device status</label>
          <select id="device-status-filter" value={status} onChange={(e) => setStatus(e.target.value)}>
            <option value="">All</option>
            {statuses.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </div>
      </div>
      {shown.length === 0 ? (
        <EmptyState>{rollout.devices.length === 0 ? (onlyFailed ? 'No device has failed.' : 'No device has been chosen for a wave yet.') : `No device is ${status}.`}</EmptyState>
      ) : (
        <>
          <TableScroll label="Rollout devices" tall>
            <table className="table">
              <thead>
                <tr>
                  <th scope="col">Device</th>
                  <th scope="col" className="num">
                    Wave
                  </th>
                  <th scope="col">Status</th>
                  <th scope="col">Why chosen</th>
                  <th scope="col">Detail</th>
                  <th scope="col">Released</th>
                  <th scope="col">Done</th>
                </tr>
              </thead>
              <tbody>
                {shown.slice(0, DEVICE_ROWS).map((d) => (
                  <tr key={d.device}>
                    <th scope="row">
                      <Link href={`/devices/${encodeName(d.device)}`}>{d.device}</Link>
                    </th>
                    <td className="num">{d.wave}</td>
                    <td>
                      <StateBadge state={d.status} />
                    </td>
                    <td className="wrap">{d.why}</td>
                    <td className="wrap">{d.detail ?? <span className="muted">—</span>}</td>
                    <td>
                      <Timestamp at={d.releasedAt} />
                    </td>
                    <td>
                      <Timestamp at={d.doneAt} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableScroll>
          {shown.length > DEVICE_ROWS ? (
            <p className="muted small">
              Showing {DEVICE_ROWS} of {formatCount(shown.length)}; choose a status to narrow the list.
            </p>
          ) : null}
        </>
      )}
    </section>
  );
}
