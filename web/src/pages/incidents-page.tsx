import { Link } from 'wouter';
import { encodeName } from '../api/api-client.ts';
import type { Incident } from '../api/resources.ts';
import { ErrorNotice, EmptyState, Loading } from '../components/notices.tsx';
import { PageHeader } from '../components/page-header.tsx';
import { StateBadge } from '../components/state-badge.tsx';
import { TableScroll } from '../components/table-scroll.tsx';
import { TimeAgo, Timestamp } from '../components/time-ago.tsx';
import { usePoll } from '../live/use-poll.ts';

/** Incidents, open ones first: each opened by a rollout that crossed its threshold or was aborted. */
export function IncidentsPage() {
  const { data, error } = usePoll<Incident[]>('/v1/incidents');
  const incidents = data ? [...data].sort((a, b) => Number(b.state === 'open') - Number(a.state === 'open') || b.openedAt.localeCompare(a.openedAt)) : [];
  return (
    <>
      <PageHeader title="Incidents" subtitle="A rollout that halts or is aborted opens an incident with its timeline." />
      <ErrorNotice error={error} />
      {!data ? (
        error ? null : <Loading what="incidents" />
      ) : incidents.length === 0 ? (
        <EmptyState>No incidents. Every rollout so far has stayed under its failure threshold.</EmptyState>
      ) : (
        <TableScroll label="Incidents">
          <table className="table">
            <thead>
              <tr>
                <th scope="col">Incident</th>
                <th scope="col">State</th>
                <th scope="col">Deployment</th>
                <th scope="col">Rollout</th>
                <th scope="col">Opened</th>
                <th scope="col">Resolved</th>
              </tr>
            </thead>
            <tbody>
              {incidents.map((i) => (
                <tr key={i.id} data-testid="incident-row">
                  <th scope="row" className="wrap">
                    <Link href={`/incidents/${encodeName(i.id)}`}>{i.title}</Link>
                  </th>
                  <td>
                    <StateBadge state={i.state} />
                  </td>
                  <td>{i.deployment}</td>
                  <td>
                    <Link href={`/rollouts/${encodeName(i.rollout)}`}>{i.rollout}</Link>
                  </td>
                  <td>
                    <TimeAgo at={i.openedAt} />
                  </td>
                  <td>
                    <Timestamp at={i.closedAt} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      )}
    </>
  );
}
