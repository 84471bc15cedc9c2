import { formatAge, formatTimestamp } from '../format/time.ts';

/** An age people read at a glance, with the exact instant on hover and for machines. */
export function TimeAgo({ at }: { at: string | null | undefined }) {
  if (!at) return <span className="muted">—</span>;
  return (
    <time dateTime={at} title={formatTimestamp(at)}>
      {formatAge(at)}
    </time>
  );
}

/** The exact instant, in the browser's zone. */
export function Timestamp({ at }: { at: string | null | undefined }) {
  if (!at) return <span className="muted">—</span>;
  return (
    <time dateTime={at} title={at}>
      {formatTimestamp(at)}
    </time>
  );
}
