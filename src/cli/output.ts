import { stringify } from 'yaml';

export type OutputFormat = 'table' | 'wide' | 'json' | 'yaml';

export function parseOutputFormat(value: string | undefined): OutputFormat {
  if (value === undefined) return 'table';
  if (value === 'json' || value === 'yaml' || value === 'wide') return value;
  throw new Error(`-o: unknown output format "${value}" (use json, yaml or wide)`);
}

/** Machine formats print the data as it is; people get a table. */
export function printData(data: unknown, format: OutputFormat, table: () => string[][]): void {
  if (format === 'json') return void process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  if (format === 'yaml') return void process.stdout.write(stringify(data));
  process.stdout.write(renderTable(table()));
}

export function renderTable(rows: string[][]): string {
  if (rows.length <= 1) return rows.length === 1 ? 'No resources found.\n' : '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('   ').trimEnd()).join('\n') + '\n';
}

/** "3m ago" style ages for tables. */
export function age(iso: string | null | undefined, nowMs = Date.now()): string {
  if (!iso) return '-';
  const seconds = Math.max(0, Math.round((nowMs - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}
