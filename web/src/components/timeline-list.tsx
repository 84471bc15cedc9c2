import type { TimelineEntry } from '../api/resources.ts';
import { Timestamp } from './time-ago.tsx';

/** What happened, in order: an incident's or a rollout's timeline. */
export function TimelineList({ label, entries }: { label: string; entries: TimelineEntry[] }) {
  return (
    <ol className="timeline" aria-label={label}>
      {entries.map((entry, i) => (
        <li key={`${entry.at}-${i}`}>
          <span className="timeline__at">
            <Timestamp at={entry.at} />
          </span>
          <span className="timeline__message">{entry.message}</span>
        </li>
      ))}
    </ol>
  );
}
