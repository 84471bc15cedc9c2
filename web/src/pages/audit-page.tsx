import { useEffect, useRef, useState } from 'react';
import { queryString } from '../api/api-client.ts';
import type { ApiError } from '../api/api-client.ts';
import type { AuditEntry, AuditPage as AuditAnswer } from '../api/resources.ts';
import { SelectFilter, TextFilter } from '../components/filter-fields.tsx';
import { ErrorNotice, EmptyState, Loading } from '../components/notices.tsx';
import { PageHeader } from '../components/page-header.tsx';
import { StateBadge } from '../components/state-badge.tsx';
import { TableScroll } from '../components/table-scroll.tsx';
import { Timestamp } from '../components/time-ago.tsx';
import { useLiveReporter } from '../live/live-status.tsx';
import { startLiveLoop, type LiveLoop } from '../live/live-loop.ts';
import { asApiError, POLL_INTERVAL_MS } from '../live/use-poll.ts';
import { useQueryState } from '../live/use-query-state.ts';
import { useApi } from '../session/session.tsx';

const PAGE_SIZE = 100;
const FILTERS = ['actor', 'action', 'outcome'] as const;
const OUTCOMES = ['ok', 'failed', 'denied'] as const;

type Log = { entries: AuditEntry[]; next: number | null; loaded: boolean; error: ApiError | null };

/**
 * The audit log in chain order, a page at a time ("Load more" follows `next`). Once the last page
 * is in, new entries are asked for every few seconds and appended as they happen.
 */
export function AuditPage() {
  const api = useApi();
  const reporter = useLiveReporter();
  const [filters, setFilters] = useQueryState(FILTERS);
  const [log, setLog] = useState<Log>({ entries: [], next: null, loaded: false, error: null });
  const cursor = useRef<{ after: number | null; hasMore: boolean }>({ after: null, hasMore: false });
  const loop = useRef<LiveLoop | null>(null);
  const loadMore = useRef<() => void>(() => {});
  const query = queryString(filters);

  useEffect(() => {
    cursor.current = { after: null, hasMore: false };
    setLog({ entries: [], next: null, loaded: false, error: null });
    let current = true;
    let busy = false;
    const fetchPage = async (signal: AbortSignal) => {
      // One page at a time: a second click or a tick during a load would fetch the same page twice.
      if (busy) return;
      busy = true;
      const { after } = cursor.current;
      try {
        const page = await api.get<AuditAnswer>(`/v1/audit${queryString({ ...filters, after: after ?? undefined, limit: PAGE_SIZE })}`, signal);
        if (!current) return;
        reporter.success();
        const last = page.entries.at(-1)?.seq ?? after;
        cursor.current = { after: last, hasMore: page.next !== null };
        setLog((s) => ({ entries: [...s.entries, ...page.entries], next: page.next, loaded: true, error: null }));
      } catch (cause) {
        if (!current || signal.aborted) return;
        const error = asApiError(cause);
        reporter.failure(error);
        setLog((s) => ({ ...s, loaded: true, error }));
      } finally {
        busy = false;
      }
    };
    // Pages beyond the first come on request; at the end of the log the loop keeps watching for new entries.
    loop.current = startLiveLoop(async (signal) => {
      if (cursor.current.hasMore) return;
      await fetchPage(signal);
    }, POLL_INTERVAL_MS);
    const manual = new AbortController();
    loadMore.current = () => void fetchPage(manual.signal);
    return () => {
      current = false;
      manual.abort();
      loop.current?.stop();
    };
    // `query` stands for the filters.
  }, [query, api, reporter]);

  return (
    <>
      <PageHeader title="Audit log" subtitle="Every action on the fleet, who did it, from where and how it ended, in a tamper-evident chain." />
      <form className="filters" role="search" aria-label="Audit filters" onSubmit={(e) => e.preventDefault()}>
        <TextFilter label="Actor" value={filters.actor} onChange={(actor) => setFilters({ actor })} placeholder="token:ID or device:NAME" />
        <TextFilter label="Action" value={filters.action} onChange={(action) => setFilters({ action })} placeholder="e.g. rollout.*" />
        <SelectFilter label="Outcome" value={filters.outcome} onChange={(outcome) => setFilters({ outcome })} options={OUTCOMES} anyLabel="Any outcome" />
      </form>
      <ErrorNotice error={log.error} />
      {!log.loaded ? (
        <Loading what="the audit log" />
      ) : log.entries.length === 0 ? (
        log.error ? null : <EmptyState>{query ? 'No audit entry matches these filters.' : 'The audit log is empty.'}</EmptyState>
      ) : (
        <>
          <TableScroll label="Audit entries">
            <table className="table">
              <thead>
                <tr>
                  <th scope="col" className="num">
                    #
                  </th>
                  <th scope="col">When</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Action</th>
                  <th scope="col">Target</th>
                  <th scope="col">Outcome</th>
                  <th scope="col">From</th>
                  <th scope="col">Detail</th>
                </tr>
              </thead>
              <tbody>
                {log.entries.map((e) => (
                  <tr key={e.seq} data-testid="audit-row">
                    <td className="num muted">{e.seq}</td>
                    <td>
                      <Timestamp at={e.at} />
                    </td>
                    <td>
                      {e.actor} <span className="muted small">{e.role}</span>
                    </td>
                    <td className="mono">{e.action}</td>
                    <td>{e.target ?? <span className="muted">—</span>}</td>
                    <td>
                      <Outcome entry={e} />
                    </td>
                    <td className="mono">{e.sourceIp ?? '—'}</td>
                    <td className="wrap detail-cell">{detailText(e.detail)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableScroll>
          <div className="pager">
            <span className="pager__range">
              {log.entries.length} entries{log.next === null ? ', up to now; new ones appear as they happen' : ''}
            </span>
            {log.next !== null ? (
              <button type="button" onClick={() => loadMore.current()}>
                Load more
              </button>
            ) : null}
          </div>
        </>
      )}
    </>
  );
}

function Outcome({ entry }: { entry: AuditEntry }) {
  const status = typeof entry.status === 'number' ? entry.status : Number(entry.status);
  const word = entry.error ? (status === 401 || status === 403 ? 'denied' : 'failed') : 'ok';
  return (
    <span title={entry.error ?? undefined}>
      <StateBadge state={word} /> <span className="muted small">{entry.status ?? ''}{entry.error ? ` ${entry.error}` : ''}</span>
    </span>
  );
}

const detailText = (detail: unknown): string => (detail === null || detail === undefined ? '' : typeof detail === 'string' ? detail : JSON.stringify(detail));
