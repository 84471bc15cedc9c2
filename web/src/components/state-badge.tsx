/**
 * One vocabulary of colours for every state the API speaks of: green is good, amber is on its way
 * or waiting, red needs a person, grey is unknown or out of play. The badge always says the state in
 * words and carries a shape per tone (styles.css), so colour is never the only signal.
 */
export type Tone = 'good' | 'busy' | 'bad' | 'idle' | 'warn';

const TONES: Record<string, Tone> = {
  'up-to-date': 'good',
  healthy: 'good',
  updated: 'good',
  complete: 'good',
  recovered: 'good',
  resolved: 'good',
  online: 'good',
  ok: 'good',
  updating: 'busy',
  applying: 'busy',
  progressing: 'busy',
  baking: 'busy',
  pending: 'busy',
  released: 'busy',
  queued: 'busy',
  'waiting-window': 'busy',
  'waiting-for-window': 'busy',
  'held-by-rollout': 'busy',
  paused: 'warn',
  reverted: 'warn',
  'local-change': 'warn',
  'rolling-back': 'warn',
  failed: 'bad',
  halted: 'bad',
  open: 'bad',
  'rolled-back': 'bad',
  'health-check-failed': 'bad',
  'download-failed': 'bad',
  'start-failed': 'bad',
  denied: 'bad',
  offline: 'idle',
  unknown: 'idle',
  superseded: 'idle',
  skipped: 'idle',
  excused: 'idle',
  'not-reported': 'idle',
};

export const toneOf = (state: string): Tone => TONES[state] ?? 'idle';

export function StateBadge({ state, testId }: { state: string; testId?: string }) {
  const tone = toneOf(state);
  return (
    // The shape is drawn by CSS (::before), so the badge's text is exactly the state.
    <span className={`badge badge--${tone}`} data-testid={testId}>
      {state}
    </span>
  );
}
