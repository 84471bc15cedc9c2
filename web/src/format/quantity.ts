/** Counts, shares and sizes, formatted the same way on every page. */

const counts = new Intl.NumberFormat('en-US');

export const formatCount = (n: number) => counts.format(n);

export function formatShare(part: number, whole: number): string {
  if (whole === 0) return '0%';
  const pct = (part * 100) / whole;
  // Never round a few devices away: 1 of 200 is not "0%", and 199 of 200 is not "100%".
  if (pct > 0 && pct < 1) return '<1%';
  if (pct > 99 && pct < 100) return '>99%';
  return `${Math.round(pct)}%`;
}

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/** Memory sizes in the unit a chart axis can hold: MiB below 1 GiB, GiB above. */
export function formatBytes(bytes: number): string {
  if (bytes >= GIB) return `${(bytes / GIB).toFixed(bytes >= 10 * GIB ? 0 : 1)} GiB`;
  if (bytes >= MIB) return `${(bytes / MIB).toFixed(0)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(0)} KiB`;
  return `${bytes} B`;
}
