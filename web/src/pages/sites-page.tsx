import { Link } from 'wouter';
import { queryString } from '../api/api-client.ts';
import type { SitePage } from '../api/resources.ts';
import { TextFilter } from '../components/filter-fields.tsx';
import { Labels } from '../components/labels.tsx';
import { ErrorNotice, EmptyState, Loading } from '../components/notices.tsx';
import { PageHeader } from '../components/page-header.tsx';
import { Pager } from '../components/pager.tsx';
import { SortableHeader, type SortOrder } from '../components/sortable-header.tsx';
import { StateBar } from '../components/state-bar.tsx';
import { TableScroll } from '../components/table-scroll.tsx';
import { formatCount } from '../format/quantity.ts';
import { usePoll } from '../live/use-poll.ts';
import { useQueryState } from '../live/use-query-state.ts';

const PAGE_SIZE = 50;
const FILTERS = ['q', 'sort', 'order', 'offset'] as const;
type SortColumn = 'name' | 'devices' | 'region';

/** Sites with how many devices each has and where they stand. */
export function SitesPage() {
  const [filters, setFilters] = useQueryState(FILTERS);
  const sort = (['name', 'devices', 'region'].includes(filters.sort) ? filters.sort : 'name') as SortColumn;
  const order: SortOrder = filters.order === 'desc' ? 'desc' : 'asc';
  const offset = Math.max(0, Number(filters.offset) || 0);
  const { data, error, stale } = usePoll<SitePage>(`/v1/fleet/sites${queryString({ q: filters.q, sort, order, limit: PAGE_SIZE, offset })}`);
  const onSort = (column: SortColumn, next: SortOrder) => setFilters({ sort: column === 'name' ? '' : column, order: next === 'asc' ? '' : next, offset: '' });

  return (
    <>
      <PageHeader title="Sites" subtitle={data ? `${formatCount(data.total)} sites` : undefined} />
      <form className="filters" role="search" aria-label="Site filters" onSubmit={(e) => e.preventDefault()}>
        <TextFilter label="Search sites" type="search" value={filters.q} onChange={(q) => setFilters({ q, offset: '' })} placeholder="part of a name" />
      </form>
      <ErrorNotice error={error} />
      {!data ? (
        error ? null : <Loading what="sites" />
      ) : (
        <div className={stale ? 'is-stale' : undefined} aria-busy={stale}>
          <TableScroll label="Sites">
            <table className="table">
              <thead>
                <tr>
                  <SortableHeader column="name" label="Site" sort={sort} order={order} onSort={onSort} />
                  <SortableHeader column="region" label="Region" sort={sort} order={order} onSort={onSort} />
                  <SortableHeader column="devices" label="Devices" sort={sort} order={order} onSort={onSort} numeric />
                  <th scope="col" className="num">
                    Online
                  </th>
                  <th scope="col" className="bar-col">
                    States
                  </th>
                  <th scope="col">Labels</th>
                </tr>
              </thead>
              <tbody>
                {data.sites.map((s) => (
                  <tr key={s.name} data-testid="site-row" data-site={s.name}>
                    <th scope="row">
                      <Link href={`/devices?site=${encodeURIComponent(s.name)}`}>{s.name}</Link>
                    </th>
                    <td>{s.region ?? <span className="muted">—</span>}</td>
                    <td className="num">{formatCount(s.devices)}</td>
                    <td className={s.online < s.devices ? 'num text-warn' : 'num'}>{formatCount(s.online)}</td>
                    <td className="bar-col">
                      <StateBar states={s.states} label={s.name} />
                    </td>
                    <td>
                      <Labels labels={s.labels} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableScroll>
          {data.sites.length === 0 ? <EmptyState>{filters.q ? 'No site matches this search.' : 'No sites yet. Apply a Site resource, or let agents enroll with --site.'}</EmptyState> : null}
          <Pager offset={offset} limit={PAGE_SIZE} total={data.total} shown={data.sites.length} onOffset={(next) => setFilters({ offset: next === 0 ? '' : String(next) })} />
        </div>
      )}
    </>
  );
}
