import { deviceStates, type StateCounts } from '../api/resources.ts';
import { formatCount, formatShare } from '../format/quantity.ts';
import { toneOf } from './state-badge.tsx';

/** The fleet's five states as one stacked bar: how much of a site, region or fleet is in each. */
export function StateBar({ states, label }: { states: StateCounts; label: string }) {
  const total = deviceStates.reduce((sum, s) => sum + (states[s] ?? 0), 0);
  const words = deviceStates
    .filter((s) => (states[s] ?? 0) > 0)
    .map((s) => `${formatCount(states[s])} ${s}`)
    .join(', ');
  return (
    <div className="bar" role="img" aria-label={`${label}: ${words || 'no devices'}`}>
      {total === 0 ? (
        <span className="bar__empty" />
      ) : (
        deviceStates.map((s) =>
          states[s] > 0 ? <span key={s} className={`bar__seg tone--${toneOf(s)}`} style={{ flexGrow: states[s] }} title={`${s}: ${formatCount(states[s])} (${formatShare(states[s], total)})`} /> : null,
        )
      )}
    </div>
  );
}
