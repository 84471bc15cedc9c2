import { Link } from 'wouter';
import { encodeName, queryString } from '../api/api-client.ts';
import { deviceStates, driftReasons, type DevicePage } from '../api/resources.ts';
import { ComponentVersions } from '../components/device-components.tsx';
import { SelectFilter, SiteFilter, TextFilter } from '../components/filter-fields.tsx';
import { ErrorNotice, EmptyState, Loading } from '../components/notices.tsx';
import { PageHeader } from '../components/page-header.tsx';
import { Pager } from '../components/pager.tsx';
import { SortableHeader, type SortOrder } from '../components/sortable-header.tsx';
import { StateBadge } from '../components/state-badge.tsx';
import { TableScroll } from '../components/table-scroll.tsx';
import { TimeAgo } from '../components/time-ago.tsx';
import { formatCount } from '../format/quantity.ts';
import { usePoll } from '../live/use-poll.ts';
import { useQueryState } from '../live/use-query-state.ts';

const PAGE_SIZE = 50;
const FILTERS = ['q', 'site', 'state', 'selector', 'reason', 'sort', 'order', 'offset'] as const;
type SortColumn = 'name' | 'site' | 'state' | 'lastSeen';

/** The fleet as a table: searched, filtered, sorted and paged by the server, never fetched whole. */
export function DevicesPage() {
  const [filters, setFilters] = useQueryState(FILTERS);
  const sort = (['name', 'site', 'state', 'lastSeen'].includes(filters.sort) ? filters.sort : 'name') as SortColumn;
  const order: SortOrder = filters.order === 'desc' ? 'desc' : 'asc';
  const offset = Math.max(0, Number(filters.offset) || 0);
  const path = `/v1/fleet/devices${queryString({ q: filters.q, site: filters.site, state: filters.state, selector: filters.selector, reason: filters.reason, sort, order, limit: PAGE_SIZE, offset })}`;
  const { data, error, stale } = usePoll<DevicePage>(path);
  // A new filter starts again at the first page.
  const filter = (changes: Partial<Record<(typeof FILTERS)[number], string>>) => setFilters({ ...changes, offset: '' });
  const onSort = (column: SortColumn, next: SortOrder) => setFilters({ sort: column === 'name' ? '' : column, order: next === 'asc' ? '' : next, offset: '' });

  return (
    <>
      <PageHeader title="Devices" subtitle={data ? <><span data-testid="device-total">{formatCount(data.total)}</span> devices match</> : undefined} />
      <form className="filters" role="search" aria-label="Device filters" onSubmit={(e) => e.preventDefault()}>
        <TextFilter label="Search devices" type="search" value={filters.q} onChange={(q) => filter({ q })} placeholder="part of a name" />
        <SiteFilter value={filters.site} onChange={(site) => filter({ site })} />
        <SelectFilter label="State" value={filters.state} onChange={(state) => filter({ state })} options={deviceStates} anyLabel="Any state" />
        <SelectFilter label="Reason" value={filters.reason} onChange={(reason) => filter({ reason })} options={driftReasons} anyLabel="Any reason" />
        <TextFilter label="Label selector" value={filters.selector} onChange={(selector) => filter({ selector })} placeholder="tier=store" wide />
      </form>
      <ErrorNotice error={error} />
      {!data ? (
        error ? null : <Loading what="devices" />
      ) : (
        <div className={stale ? 'is-stale' : undefined} aria-busy={stale}>
          <TableScroll label="Devices">
            <table className="table">
              <thead>
                <tr>
                  <SortableHeader column="name" label="Name" sort={sort} order={order} onSort={onSort} />
                  <SortableHeader column="site" label="Site" sort={sort} order={order} onSort={onSort} />
                  <th scope="col">Region</th>
                  <SortableHeader column="state" label="State" sort={sort} order={order} onSort={onSort} />
                  <th scope="col">Components</th>
                  <th scope="col">Drift</th>
                  <SortableHeader column="lastSeen" label="Last seen" sort={sort} order={order} onSort={onSort} />
                </tr>
              </thead>
              <tbody>
                {data.devices.map((d) => (
                  <tr key={d.name} data-testid="device-row" data-device={d.name}>
                    <th scope="row">
                      <Link href={`/devices/${encodeName(d.name)}`}>{d.name}</Link>
                    </th>
                    <td>{d.site ?? <span className="muted">—</span>}</td>
                    <td>{d.region ?? <span className="muted">—</span>}</td>
                    <td>
                      <StateBadge state={d.state} />
                    </td>
                    <td>
                      <ComponentVersions components={d.components} />
                    </td>
                    <td>{d.reasons.length === 0 ? <span className="muted">—</span> : d.reasons.join(', ')}</td>
                    <td>
                      <TimeAgo at={d.lastSeen} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableScroll>
          {data.devices.length === 0 ? <EmptyState>{data.total === 0 && offset === 0 ? 'No device matches. Clear a filter or search for part of a name.' : 'No devices on this page.'}</EmptyState> : null}
          <Pager offset={offset} limit={PAGE_SIZE} total={data.total} shown={data.devices.length} onOffset={(next) => setFilters({ offset: next === 0 ? '' : String(next) })} />
        </div>
      )}
    </>
  );
}
