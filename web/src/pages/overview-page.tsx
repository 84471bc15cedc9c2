import { Link } from 'wouter';
import { deviceStates, type FleetOverview } from '../api/resources.ts';
import { ErrorNotice, EmptyState, Loading } from '../components/notices.tsx';
import { PageHeader } from '../components/page-header.tsx';
import { RolloutProgress } from '../components/rollout-progress.tsx';
import { StateBadge, toneOf } from '../components/state-badge.tsx';
import { StateBar } from '../components/state-bar.tsx';
import { TableScroll } from '../components/table-scroll.tsx';
import { TimeAgo } from '../components/time-ago.tsx';
import { formatCount, formatShare } from '../format/quantity.ts';
import { usePoll } from '../live/use-poll.ts';

/** The fleet in one screen: what needs attention on top, then where devices stand and what they run. */
export function OverviewPage() {
  const { data, error } = usePoll<FleetOverview>('/v1/fleet/overview');
  return (
    <>
      <PageHeader title="Fleet overview" subtitle={data ? <>As of <TimeAgo at={data.generatedAt} /></> : undefined} />
      <ErrorNotice error={error} />
      {data ? <Overview overview={data} /> : error ? null : <Loading what="the fleet" />}
    </>
  );
}

function Overview({ overview }: { overview: FleetOverview }) {
  return (
    <>
      <div className="grid grid--two">
        <section className="card" aria-labelledby="active-rollouts">
          <h2 id="active-rollouts">Active rollouts</h2>
          {overview.rollouts.length === 0 ? (
            <EmptyState>No rollout is in flight. Every deployment runs its current revision.</EmptyState>
          ) : (
            <ul className="link-list">
              {overview.rollouts.map((r) => (
                <li key={r.name}>
                  <div className="link-list__line">
                    <Link href={`/rollouts/${encodeURIComponent(r.name)}`}>{r.name}</Link>
                    <StateBadge state={r.state} />
                  </div>
                  <div className="link-list__meta">
                    {r.deployment} · revision {r.revision}
                    {r.reason ? ` · ${r.reason}` : ''}
                  </div>
                  <RolloutProgress waves={r.waves} />
                </li>
              ))}
            </ul>
          )}
        </section>
        <section className="card" aria-labelledby="open-incidents">
          <h2 id="open-incidents">Open incidents</h2>
          {overview.incidents.length === 0 ? (
            <EmptyState>No open incidents. A rollout that crosses its failure threshold opens one here.</EmptyState>
          ) : (
            <ul className="link-list">
              {overview.incidents.map((i) => (
                <li key={i.id}>
                  <div className="link-list__line">
                    <Link href={`/incidents/${encodeURIComponent(i.id)}`}>{i.title}</Link>
                    <StateBadge state={i.state} />
                  </div>
                  <div className="link-list__meta">
                    {i.deployment} · rollout {i.rollout} · opened <TimeAgo at={i.openedAt} />
                  </div>
                </li>
              ))}
            </ul>
          )}
        </section>
      </div>

      <section aria-labelledby="fleet-states" className="card">
        <h2 id="fleet-states">Devices by state</h2>
        <div className="tiles">
          <div className="tile">
            <span className="tile__label">Devices</span>
            <span className="tile__value" data-testid="device-count">
              {formatCount(overview.devices)}
            </span>
            {overview.pendingApproval > 0 ? (
              <Link href="/devices" className="tile__note">
                +{formatCount(overview.pendingApproval)} awaiting approval
              </Link>
            ) : (
              <span className="tile__note">accepted</span>
            )}
          </div>
          {deviceStates.map((state) => (
            <div key={state} className={`tile tile--${toneOf(state)}`}>
              <span className="tile__label">
                <StateBadge state={state} />
              </span>
              <span className="tile__value" data-testid={`state-${state}`}>
                {formatCount(overview.states[state] ?? 0)}
              </span>
              <Link href={`/devices?state=${state}`} className="tile__note">
                {formatShare(overview.states[state] ?? 0, overview.devices)} of the fleet
              </Link>
            </div>
          ))}
        </div>
        <StateBar states={overview.states} label="Whole fleet" />
      </section>

      <section aria-labelledby="deployments" className="card">
        <h2 id="deployments">What the fleet runs</h2>
        {overview.deployments.length === 0 ? (
          <EmptyState>No deployments yet. Apply one with <code>driftless apply -f deployment.yaml</code>.</EmptyState>
        ) : (
          <div className="deployments">
            {overview.deployments.map((d) => (
              <DeploymentShare key={d.name} deployment={d} />
            ))}
          </div>
        )}
      </section>

      <div className="grid grid--regions">
        <section aria-labelledby="by-region" className="card">
          <h2 id="by-region">By region</h2>
          <PlaceTable label="Devices by region" rows={overview.regions.map((r) => ({ key: r.name, name: r.name, region: null, devices: r.devices, states: r.states }))} />
        </section>
        <section aria-labelledby="by-site" className="card">
          <h2 id="by-site">
            By site <span className="muted">({formatCount(overview.sites.length)})</span>
          </h2>
          <PlaceTable label="Devices by site" sites rows={overview.sites.map((s) => ({ key: s.name, name: s.name, region: s.region, devices: s.devices, states: s.states }))} />
        </section>
      </div>
    </>
  );
}

type Deployment = FleetOverview['deployments'][number];

/** The share of a deployment's devices on each revision, the target revision first and in the accent colour. */
function DeploymentShare({ deployment }: { deployment: Deployment }) {
  const total = deployment.versions.reduce((n, v) => n + v.devices, 0);
  const versions = [...deployment.versions].sort((a, b) => rank(b, deployment) - rank(a, deployment) || b.devices - a.devices);
  return (
    <div className="deployment">
      <div className="deployment__head">
        <strong>{deployment.name}</strong>
        <span className="muted">
          {deployment.targetRevision === deployment.revision ? `revision ${deployment.revision}` : `target revision ${deployment.targetRevision} (latest ${deployment.revision})`} · {formatCount(total)} devices
        </span>
      </div>
      <div className="bar bar--tall" role="img" aria-label={`${deployment.name}: ${versions.map((v) => `${revisionLabel(v)} on ${formatCount(v.devices)}`).join(', ')}`}>
        {versions.map((v, i) => (
          <span key={i} className={`bar__seg ${shadeOf(v, deployment, i)}`} style={{ flexGrow: v.devices }} title={`${revisionLabel(v)}: ${formatCount(v.devices)} (${formatShare(v.devices, total)})`} />
        ))}
      </div>
      <ul className="legend">
        {versions.map((v, i) => (
          <li key={i}>
            <span className={`legend__swatch ${shadeOf(v, deployment, i)}`} aria-hidden="true" />
            {revisionLabel(v)} <span className="num">{formatShare(v.devices, total)}</span> <span className="muted">({formatCount(v.devices)})</span>
          </li>
        ))}
      </ul>
    </div>
  );
}

const revisionLabel = (v: Deployment['versions'][number]) => (v.revision === null ? 'not running' : `revision ${v.revision}${v.version ? ` (version ${v.version})` : ''}`);
const rank = (v: Deployment['versions'][number], d: Deployment) => (v.revision === d.targetRevision ? 3 : v.revision === d.revision ? 2 : v.revision === null ? 0 : 1);
function shadeOf(v: Deployment['versions'][number], d: Deployment, i: number): string {
  if (v.revision === null) return 'shade--none';
  if (v.revision === d.targetRevision) return 'shade--target';
  return `shade--old-${Math.min(i, 3)}`;
}

type PlaceRow = { key: string; name: string; region: string | null; devices: number; states: FleetOverview['states'] };

function PlaceTable({ label, rows, sites }: { label: string; rows: PlaceRow[]; sites?: boolean }) {
  if (rows.length === 0) return <EmptyState>No devices are placed anywhere yet.</EmptyState>;
  return (
    <TableScroll label={label} tall>
      <table className="table">
        <thead>
          <tr>
            <th scope="col">{sites ? 'Site' : 'Region'}</th>
            {sites ? <th scope="col">Region</th> : null}
            <th scope="col" className="num">
              Devices
            </th>
            <th scope="col" className="bar-col">
              States
            </th>
            <th scope="col" className="num">
              Not up to date
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => {
            const behind = row.devices - (row.states['up-to-date'] ?? 0);
            return (
              <tr key={row.key}>
                <th scope="row">{sites ? <Link href={`/devices?site=${encodeURIComponent(row.name)}`}>{row.name}</Link> : row.name}</th>
                {sites ? <td>{row.region ?? '—'}</td> : null}
                <td className="num">{formatCount(row.devices)}</td>
                <td className="bar-col">
                  <StateBar states={row.states} label={row.name} />
                </td>
                <td className={behind > 0 ? 'num strong' : 'num muted'}>{formatCount(behind)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </TableScroll>
  );
}
