import type { Wave } from '../api/resources.ts';
import { formatCount } from '../format/quantity.ts';

/** A rollout at a glance: one small bar per wave, filled by its updated (green) and failed (red) devices. */
export function RolloutProgress({ waves }: { waves: Wave[] }) {
  const devices = waves.reduce((n, w) => n + w.devices, 0);
  const updated = waves.reduce((n, w) => n + w.updated, 0);
  const failed = waves.reduce((n, w) => n + w.failed, 0);
  return (
    <div className="waves" role="img" aria-label={`${formatCount(updated)} of ${formatCount(devices)} updated, ${formatCount(failed)} failed, in ${waves.length} waves`}>
      {waves.map((w) => (
        <span key={w.index} className="waves__wave" style={{ flexGrow: Math.max(1, Math.log2(w.devices + 1)) }} title={`wave ${w.index + 1}: ${w.updated}/${w.devices} updated, ${w.failed} failed (${w.state})`}>
          <span className="waves__fill tone--good" style={{ width: pct(w.updated, w.devices) }} />
          <span className="waves__fill tone--bad" style={{ width: pct(w.failed, w.devices) }} />
        </span>
      ))}
    </div>
  );
}

const pct = (part: number, whole: number) => `${whole === 0 ? 0 : Math.min(100, (part * 100) / whole)}%`;
