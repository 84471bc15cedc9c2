/** A lifetime as people write it on a command line: `90s`, `15m`, `12h`, `30d`, `8w`. */
export const DURATION_PATTERN = '^[1-9][0-9]{0,5}[smhdw]$';

const unitMs = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 } as const;

/** Milliseconds, or null when the text is not a duration. */
export function parseDuration(text: string): number | null {
  if (!new RegExp(DURATION_PATTERN).test(text)) return null;
  return Number(text.slice(0, -1)) * unitMs[text.at(-1) as keyof typeof unitMs];
}
