import { useEffect, useRef, useState } from 'react';
import { encodeName, queryString } from '../api/api-client.ts';
import type { LogLine, LogPage } from '../api/resources.ts';
import { ErrorNotice } from '../components/notices.tsx';
import { formatTimestamp } from '../format/time.ts';
import { useLiveReporter } from '../live/live-status.tsx';
import { startLiveLoop } from '../live/live-loop.ts';
import { asApiError, POLL_INTERVAL_MS } from '../live/use-poll.ts';
import { useApi } from '../session/session.tsx';
import type { ApiError } from '../api/api-client.ts';

/** Lines kept in the page; older ones scroll away as new ones arrive. */
const KEEP_LINES = 2000;

type LogState = { lines: LogLine[]; next: number | null; dropped: number; none: boolean; error: ApiError | null };

/**
 * The device's recent logs, then every new line as it arrives (`after=<next>`), scrolled to the
 * end while following. Scrolling up to read stops following; ticking "Follow" resumes it.
 */
export function DeviceLogs({ device, components }: { device: string; components: string[] }) {
  const api = useApi();
  const reporter = useLiveReporter();
  const [component, setComponent] = useState('');
  const [follow, setFollow] = useState(true);
  const [log, setLog] = useState<LogState>({ lines: [], next: null, dropped: 0, none: false, error: null });
  const box = useRef<HTMLPreElement>(null);

  useEffect(() => {
    let next: number | null = null;
    setLog({ lines: [], next: null, dropped: 0, none: false, error: null });
    const base = `/v1/devices/${encodeName(device)}/logs`;
    const loop = startLiveLoop(async (signal) => {
      try {
        const page = await api.get<LogPage>(`${base}${queryString(next === null ? { tail: 200, component } : { after: next, component })}`, signal);
        reporter.success();
        next = page.next ?? next;
        setLog((s) => ({ lines: [...s.lines, ...page.logs].slice(-KEEP_LINES), next, dropped: page.dropped ?? s.dropped, none: false, error: null }));
      } catch (cause) {
        if (signal.aborted) return;
        const error = asApiError(cause);
        if (error.status === 404) setLog((s) => ({ ...s, none: true, error: null }));
        else {
          reporter.failure(error);
          setLog((s) => ({ ...s, error }));
        }
      }
    }, POLL_INTERVAL_MS);
    return () => loop.stop();
  }, [device, component, api, reporter]);

  useEffect(() => {
    const element = box.current;
    if (follow && element) element.scrollTop = element.scrollHeight;
  }, [log.lines, follow]);

  const onScroll = () => {
    const element = box.current;
    if (!element) return;
    const atEnd = element.scrollHeight - element.scrollTop - element.clientHeight < 24;
    if (follow !== atEnd) setFollow(atEnd);
  };

  return (
    <>
      <div className="toolbar">
        <div className="field field--inline">
          <label htmlFor="component-filter">Component</label>
          <select id="component-filter" value={component} onChange={(e) => setComponent(e.target.value)}>
            <option value="">All components</option>
            {components.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        </div>
        <label className="checkbox">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> Follow new lines
        </label>
        {log.dropped > 0 ? <span className="muted small">{log.dropped} lines were dropped on the device before upload</span> : null}
      </div>
      <ErrorNotice error={log.error} />
      {log.none ? (
        <p className="empty">No logs yet: this device has not sent any telemetry.</p>
      ) : log.lines.length === 0 ? (
        <p className="empty">No log lines{component ? ` from ${component}` : ''} yet.</p>
      ) : (
        <pre className="logs" ref={box} onScroll={onScroll} tabIndex={0} aria-label="Log lines">
          {log.lines.map((l) => (
            <div key={l.seq} className="logs__line">
              <span className="logs__at">{formatTimestamp(l.at)}</span> <span className="logs__component">{l.component}</span> {l.line}
            </div>
          ))}
        </pre>
      )}
    </>
  );
}
