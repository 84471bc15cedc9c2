import { Link } from 'wouter';
import { encodeName, queryString } from '../api/api-client.ts';
import { driftReasons, type DriftEntry, type DriftReport } from '../api/resources.ts';
import { SelectFilter, SiteFilter, TextFilter } from '../components/filter-fields.tsx';
import { ErrorNotice, EmptyState, Loading } from '../components/notices.tsx';
import { PageHeader } from '../components/page-header.tsx';
import { StateBadge } from '../components/state-badge.tsx';
import { TableScroll } from '../components/table-scroll.tsx';
import { TimeAgo } from '../components/time-ago.tsx';
import { formatCount } from '../format/quantity.ts';
import { usePoll } from '../live/use-poll.ts';
import { useQueryState } from '../live/use-query-state.ts';

/** Entries fetched at once; the reason counts always cover the whole filtered set. */
const DRIFT_PAGE = 500;

const FILTERS = ['site', 'selector', 'reason'] as const;

/** Every device and component that is not what it should be, grouped by why. */
export function DriftPage() {
  const [filters, setFilters] = useQueryState(FILTERS);
  const { data, error, stale } = usePoll<DriftReport>(`/v1/drift${queryString({ ...filters, limit: DRIFT_PAGE })}`);
  const reasons = data ? Object.entries(data.reasons).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])) : [];
  const knownReasons = [...new Set<string>([...driftReasons, ...Object.keys(data?.reasons ?? {})])];

  return (
    <>
      <PageHeader title="Drift and outliers" subtitle={data?.summary} />
      <form className="filters" role="search" aria-label="Drift filters" onSubmit={(e) => e.preventDefault()}>
        <SiteFilter value={filters.site} onChange={(site) => setFilters({ site })} />
        <SelectFilter label="Reason" value={filters.reason} onChange={(reason) => setFilters({ reason })} options={knownReasons} anyLabel="Any reason" />
        <TextFilter label="Label selector" value={filters.selector} onChange={(selector) => setFilters({ selector })} placeholder="tier=store,region!=eu-west" wide />
      </form>
      <ErrorNotice error={error} />
      {!data ? (
        error ? null : <Loading what="drift" />
      ) : data.total === 0 ? (
        <EmptyState>{filters.site || filters.reason || filters.selector ? 'No drift matches these filters.' : 'No drift: every device runs what it should.'}</EmptyState>
      ) : (
        <div className={stale ? 'is-stale' : undefined} aria-busy={stale}>
          {data.entries.length < data.total ? (
            <p className="muted small">
              Showing the first {formatCount(data.entries.length)} of {formatCount(data.total)} entries; narrow the filters to see the rest.
            </p>
          ) : null}
          {reasons.map(([reason, count]) => (
            <DriftGroup key={reason} reason={reason} count={count} entries={data.entries.filter((e) => e.reason === reason)} />
          ))}
        </div>
      )}
    </>
  );
}

function DriftGroup({ reason, count, entries }: { reason: string; count: number; entries: DriftEntry[] }) {
  const id = `reason-${reason.replace(/[^a-z0-9-]/gi, '_')}`;
  return (
    <section className="card" aria-labelledby={id}>
      <h2 id={id}>{`${reason} (${formatCount(count)})`}</h2>
      {entries.length === 0 ? (
        <EmptyState>These entries are past the first page; filter by this reason to list them.</EmptyState>
      ) : (
        <TableScroll label={`Drift: ${reason}`} tall>
          <table className="table">
            <thead>
              <tr>
                <th scope="col">Device</th>
                <th scope="col">Site</th>
                <th scope="col">Component</th>
                <th scope="col">Desired</th>
                <th scope="col">Running</th>
                <th scope="col">Since</th>
                <th scope="col">Detail</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((e) => (
                <tr key={`${e.device}/${e.component}`} data-testid="drift-row" data-device={e.device} data-component={e.component}>
                  <th scope="row">
                    <Link href={`/devices/${encodeName(e.device)}`}>{e.device}</Link>
                  </th>
                  <td>{e.site ?? '—'}</td>
                  <td>
                    {e.component} <span className="muted">({e.deployment})</span>
                  </td>
                  <td className="mono">{e.desiredVersion ?? '—'}</td>
                  <td className="mono">{e.version ?? <StateBadge state="not running" />}</td>
                  <td>
                    <TimeAgo at={e.since} />
                  </td>
                  <td className="wrap">{e.detail}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      )}
    </section>
  );
}
