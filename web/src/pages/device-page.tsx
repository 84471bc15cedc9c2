import { lazy, Suspense, useState, type ReactNode } from 'react';
import { Link } from 'wouter';
import { encodeName } from '../api/api-client.ts';
import type { DeviceDetail, DeviceEvent } from '../api/resources.ts';
import { componentLabel } from '../format/component.ts';
import { Labels } from '../components/labels.tsx';
import { ErrorNotice, EmptyState, Loading } from '../components/notices.tsx';
import { PageHeader } from '../components/page-header.tsx';
import { StateBadge } from '../components/state-badge.tsx';
import { TableScroll } from '../components/table-scroll.tsx';
import { TimeAgo, Timestamp } from '../components/time-ago.tsx';
import { usePoll } from '../live/use-poll.ts';
import { canOperate, useSession } from '../session/session.tsx';
import { DeviceLogs } from './device-logs.tsx';
import { CpuChart, MemoryChart } from './device-metrics.tsx';

// xterm.js is loaded only when an operator opens a terminal.
const DeviceTerminal = lazy(() => import('../terminal/device-terminal.tsx').then((m) => ({ default: m.DeviceTerminal })));

/** Rows of health history and events shown; the newest matter. */
const HISTORY_ROWS = 20;
const EVENT_ROWS = 100;

/** Everything about one device: what it is, what it should run and runs, how it has been, and a way in. */
export function DevicePage({ name }: { name: string }) {
  const { data: device, error } = usePoll<DeviceDetail>(`/v1/devices/${encodeName(name)}`);
  return (
    <>
      <PageHeader
        title={name}
        subtitle={
          device ? (
            <>
              {device.site ? (
                <>
                  Site <Link href={`/devices?site=${encodeURIComponent(device.site)}`}>{device.site}</Link> ·{' '}
                </>
              ) : null}
              last seen <TimeAgo at={device.lastSeen} />
            </>
          ) : undefined
        }
      >
        {device ? (
          <>
            <StateBadge state={device.online ? 'online' : 'offline'} />
            {device.status !== 'accepted' ? <StateBadge state={device.status} /> : null}
          </>
        ) : null}
      </PageHeader>
      <ErrorNotice error={error} />
      {device ? <Device device={device} /> : error ? null : <Loading what="the device" />}
    </>
  );
}

function Section({ id, title, children, wide }: { id: string; title: string; children: ReactNode; wide?: boolean }) {
  return (
    <section className={wide ? 'card card--wide' : 'card'} aria-labelledby={id}>
      <h2 id={id}>{title}</h2>
      {children}
    </section>
  );
}

function Device({ device }: { device: DeviceDetail }) {
  return (
    <div className="device-grid">
      <Section id="facts" title="Facts">
        <Facts device={device} />
      </Section>
      <Section id="components" title="Components">
        <Components device={device} />
      </Section>
      <Section id="cpu" title="CPU">
        <CpuChart device={device.name} />
      </Section>
      <Section id="memory" title="Memory">
        <MemoryChart device={device.name} />
      </Section>
      <Section id="logs" title="Logs" wide>
        <DeviceLogs device={device.name} components={device.components.map((c) => c.name)} />
      </Section>
      <Section id="health-history" title="Health history" wide>
        <HealthHistory device={device} />
      </Section>
      <Section id="events" title="Events" wide>
        <Events events={device.events} />
      </Section>
      <Section id="terminal" title="Terminal" wide>
        <TerminalSection device={device.name} />
      </Section>
    </div>
  );
}

function Facts({ device }: { device: DeviceDetail }) {
  const facts: [string, ReactNode][] = [
    ['Status', device.status],
    ['Connection', device.online ? 'online' : 'offline'],
    ['Site', device.site ?? '—'],
    ['Enrolled', <Timestamp at={device.enrolledAt} />],
    ['Desired state', `generation ${device.generation}, applied ${device.appliedGeneration}`],
    ['Labels', <Labels labels={device.labels} />],
    ...Object.entries(device.facts)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([key, value]): [string, ReactNode] => [key, factText(value)]),
  ];
  return (
    <dl className="facts">
      {facts.map(([term, value]) => (
        <div key={term} className="facts__row">
          <dt>{term}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}

const factText = (value: unknown): string => (value === null || value === undefined ? '—' : typeof value === 'object' ? JSON.stringify(value) : String(value));

function Components({ device }: { device: DeviceDetail }) {
  if (device.components.length === 0) return <EmptyState>No deployment places a component on this device.</EmptyState>;
  return (
    <TableScroll label="Components table">
      <table className="table">
        <thead>
          <tr>
            <th scope="col">Component</th>
            <th scope="col">Desired</th>
            <th scope="col">Running</th>
            <th scope="col">State</th>
            <th scope="col">Why</th>
          </tr>
        </thead>
        <tbody>
          {device.components.map((c) => (
            <tr key={c.name}>
              <th scope="row">
                {c.name}
                {c.deployment !== c.name ? <span className="muted small"> ({c.deployment})</span> : null}
              </th>
              <td className="mono">{c.desiredVersion ?? '—'}</td>
              <td className={c.version === c.desiredVersion ? 'mono' : 'mono text-warn'}>{c.version ?? '—'}</td>
              <td>
                <StateBadge state={c.state} />
              </td>
              <td className="wrap">
                {c.reason ? <strong>{c.reason}</strong> : null}
                {c.detail ? ` ${c.detail}` : null}
                {!c.reason && !c.detail ? <span className="muted">as desired</span> : null}
                {c.since ? (
                  <span className="muted small">
                    {' '}
                    since <TimeAgo at={c.since} />
                  </span>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableScroll>
  );
}

function HealthHistory({ device }: { device: DeviceDetail }) {
  const reports = [...device.history].sort((a, b) => b.reportedAt.localeCompare(a.reportedAt)).slice(0, HISTORY_ROWS);
  if (reports.length === 0) return <EmptyState>No status reports yet.</EmptyState>;
  return (
    <TableScroll label="Health history table" tall>
      <table className="table">
        <thead>
          <tr>
            <th scope="col">Reported</th>
            <th scope="col" className="num">
              Generation
            </th>
            <th scope="col">Components</th>
          </tr>
        </thead>
        <tbody>
          {reports.map((r, i) => (
            <tr key={`${r.reportedAt}-${i}`}>
              <td>
                <Timestamp at={r.reportedAt} />
              </td>
              <td className="num">{r.generation}</td>
              <td>
                <ul className="inline-list">
                  {r.components.map((c) => (
                    <li key={c.name}>
                      {c.name} <span className="mono">{c.version ?? '—'}</span> <StateBadge state={c.state} />
                    </li>
                  ))}
                </ul>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableScroll>
  );
}

function Events({ events }: { events: DeviceEvent[] }) {
  const recent = [...events].sort((a, b) => b.at.localeCompare(a.at)).slice(0, EVENT_ROWS);
  if (recent.length === 0) return <EmptyState>No events reported by this device.</EmptyState>;
  return (
    <TableScroll label="Events table" tall>
      <table className="table">
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Type</th>
            <th scope="col">Component</th>
            <th scope="col">Reason</th>
            <th scope="col">Message</th>
          </tr>
        </thead>
        <tbody>
          {recent.map((e, i) => (
            <tr key={`${e.at}-${i}`}>
              <td>
                <Timestamp at={e.at} />
              </td>
              <td>{e.type ?? '—'}</td>
              <td>{typeof e.component === 'string' ? <ComponentName name={e.component} /> : '—'}</td>
              <td>{e.reason ? <StateBadge state={e.reason} /> : '—'}</td>
              <td className="wrap">{e.message ?? '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableScroll>
  );
}

function ComponentName({ name }: { name: string }) {
  const { component, deployment } = componentLabel(name);
  return (
    <>
      {component}
      {deployment ? <span className="muted small"> ({deployment})</span> : null}
    </>
  );
}

function TerminalSection({ device }: { device: string }) {
  const { whoami, token } = useSession();
  const [open, setOpen] = useState(false);
  if (!canOperate(whoami?.role) || !token) return <EmptyState>A remote terminal needs the operator or admin role.</EmptyState>;
  if (!open) {
    return (
      <div className="terminal-closed">
        <p className="muted">A shell on the device through the agent's own channel; the session is recorded and audited.</p>
        <button type="button" className="button button--primary" onClick={() => setOpen(true)}>
          Open terminal
        </button>
      </div>
    );
  }
  return (
    <Suspense fallback={<Loading what="the terminal" />}>
      <DeviceTerminal device={device} token={token} onClose={() => setOpen(false)} />
    </Suspense>
  );
}
