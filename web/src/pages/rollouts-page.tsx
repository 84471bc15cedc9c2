import { Link } from 'wouter';
import type { RolloutView } from '../api/resources.ts';
import { ErrorNotice, EmptyState, Loading } from '../components/notices.tsx';
import { PageHeader } from '../components/page-header.tsx';
import { RolloutProgress } from '../components/rollout-progress.tsx';
import { StateBadge } from '../components/state-badge.tsx';
import { TableScroll } from '../components/table-scroll.tsx';
import { TimeAgo } from '../components/time-ago.tsx';
import { formatCount } from '../format/quantity.ts';
import { usePoll } from '../live/use-poll.ts';

const ACTIVE = new Set(['pending', 'progressing', 'paused', 'halted']);

/** Every rollout, the ones still in flight first, then the newest. */
export function RolloutsPage() {
  const { data, error } = usePoll<RolloutView[]>('/v1/rollouts');
  const rollouts = data ? [...data].sort((a, b) => Number(ACTIVE.has(b.state)) - Number(ACTIVE.has(a.state)) || b.createdAt.localeCompare(a.createdAt)) : [];
  return (
    <>
      <PageHeader title="Rollouts" subtitle="Each revision of a deployment goes out in waves, canary first, behind a health gate." />
      <ErrorNotice error={error} />
      {!data ? (
        error ? null : <Loading what="rollouts" />
      ) : rollouts.length === 0 ? (
        <EmptyState>No rollouts yet. Changing a deployment's template starts one.</EmptyState>
      ) : (
        <TableScroll label="Rollouts">
          <table className="table">
            <thead>
              <tr>
                <th scope="col">Rollout</th>
                <th scope="col">Deployment</th>
                <th scope="col" className="num">
                  Revision
                </th>
                <th scope="col">State</th>
                <th scope="col" className="bar-col">
                  Waves
                </th>
                <th scope="col" className="num">
                  Updated
                </th>
                <th scope="col" className="num">
                  Failed
                </th>
                <th scope="col">Reason</th>
                <th scope="col">Started</th>
              </tr>
            </thead>
            <tbody>
              {rollouts.map((r) => {
                const devices = r.waves.reduce((n, w) => n + w.devices, 0);
                return (
                  <tr key={r.name}>
                    <th scope="row">
                      <Link href={`/rollouts/${encodeURIComponent(r.name)}`}>{r.name}</Link>
                    </th>
                    <td>{r.deployment}</td>
                    <td className="num">{r.revision}</td>
                    <td>
                      <StateBadge state={r.state} />
                    </td>
                    <td className="bar-col">
                      <RolloutProgress waves={r.waves} />
                    </td>
                    <td className="num">
                      {formatCount(r.waves.reduce((n, w) => n + w.updated, 0))} / {formatCount(devices)}
                    </td>
                    <td className="num">{formatCount(r.waves.reduce((n, w) => n + w.failed, 0))}</td>
                    <td className="wrap">{r.reason ?? <span className="muted">—</span>}</td>
                    <td>
                      <TimeAgo at={r.createdAt} />
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </TableScroll>
      )}
    </>
  );
}
