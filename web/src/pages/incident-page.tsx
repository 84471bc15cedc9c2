import { Link } from 'wouter';
import { encodeName } from '../api/api-client.ts';
import type { Incident } from '../api/resources.ts';
import { ErrorNotice, EmptyState, Loading } from '../components/notices.tsx';
import { PageHeader } from '../components/page-header.tsx';
import { StateBadge } from '../components/state-badge.tsx';
import { Timestamp } from '../components/time-ago.tsx';
import { TimelineList } from '../components/timeline-list.tsx';
import { usePoll } from '../live/use-poll.ts';

/** One incident: what it concerns and what happened, minute by minute. */
export function IncidentPage({ id }: { id: string }) {
  const { data: incident, error } = usePoll<Incident>(`/v1/incidents/${encodeName(id)}`);
  return (
    <>
      <PageHeader title={incident?.title ?? `Incident ${id}`} subtitle={incident ? `Incident ${incident.id}` : undefined}>
        {incident ? <StateBadge state={incident.state} /> : null}
      </PageHeader>
      <p className="crumbs">
        <Link href="/incidents">← All incidents</Link>
      </p>
      <ErrorNotice error={error} />
      {!incident ? (
        error ? null : <Loading what="the incident" />
      ) : (
        <>
          <section className="card" aria-labelledby="incident-facts">
            <h2 id="incident-facts">Summary</h2>
            <dl className="facts">
              <div className="facts__row">
                <dt>Deployment</dt>
                <dd>{incident.deployment}</dd>
              </div>
              <div className="facts__row">
                <dt>Rollout</dt>
                <dd>
                  <Link href={`/rollouts/${encodeName(incident.rollout)}`}>{incident.rollout}</Link>
                </dd>
              </div>
              <div className="facts__row">
                <dt>Opened</dt>
                <dd>
                  <Timestamp at={incident.openedAt} />
                </dd>
              </div>
              <div className="facts__row">
                <dt>Resolved</dt>
                <dd>{incident.closedAt ? <Timestamp at={incident.closedAt} /> : 'still open'}</dd>
              </div>
            </dl>
          </section>
          <section className="card" aria-labelledby="incident-timeline">
            <h2 id="incident-timeline">Timeline</h2>
            {(incident.timeline ?? []).length === 0 ? <EmptyState>Nothing recorded yet.</EmptyState> : <TimelineList label="Incident timeline" entries={incident.timeline ?? []} />}
          </section>
        </>
      )}
    </>
  );
}
