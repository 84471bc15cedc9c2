import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { AuditEntry, createChainVerifier, type ChainVerdict } from '../protocol/audit-chain.ts';
import { parseDuration } from '../protocol/duration.ts';
import { DriftlessError } from '../protocol/errors.ts';
import { problems } from '../protocol/validate.ts';
import type { Api } from './api-client.ts';
import { printData, type OutputFormat } from './output.ts';

export type AuditFilters = { since?: string; until?: string; actor?: string; action?: string; outcome?: string };

/** `--since 1h` (a duration back from now) or an ISO 8601 time, as the API's ISO time. */
export function auditTime(flag: string, value: string, nowMs: number): string {
  const back = parseDuration(value);
  if (back !== null) return new Date(nowMs - back).toISOString();
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new DriftlessError('invalid-input', `${flag}: "${value}" is neither a duration (90s, 15m, 12h, 7d) nor a time (2025-06-01T12:00:00Z)`);
  return new Date(ms).toISOString();
}

function filterQuery(filters: AuditFilters, nowMs: number): string {
  const params = new URLSearchParams();
  if (filters.since !== undefined) params.set('since', auditTime('--since', filters.since, nowMs));
  if (filters.until !== undefined) params.set('until', auditTime('--until', filters.until, nowMs));
  for (const key of ['actor', 'action', 'outcome'] as const) if (filters[key] !== undefined) params.set(key, filters[key]);
  return params.toString();
}

/** Every entry matching the filters, page after page, in chain order. */
async function fetchAll(api: Api, query: string): Promise<AuditEntry[]> {
  const all: AuditEntry[] = [];
  let after = 0;
  for (;;) {
    const page = await api.get<{ entries: AuditEntry[]; next: number | null }>(`/v1/audit?${query}${query ? '&' : ''}after=${after}`);
    all.push(...page.entries);
    if (page.next === null || page.entries.length === 0) return all;
    after = page.next;
  }
}

const outcomeOf = (e: AuditEntry) => `${e.status}${e.error ? ` ${e.error}` : ''}`;

/** `driftless audit [filters] [-o json|yaml]`: who did what, to what, when, from where, and how it ended. */
export async function auditListCommand(api: Api, filters: AuditFilters, format: OutputFormat, nowMs = Date.now()): Promise<void> {
  const entries = await fetchAll(api, filterQuery(filters, nowMs));
  printData(entries, format, () => [
    ['SEQ', 'TIME', 'ACTOR', 'ACTION', 'TARGET', 'SOURCE', 'OUTCOME'],
    ...entries.map((e) => [String(e.seq), e.at, e.actor, e.action, e.target ?? '-', e.sourceIp ?? '-', outcomeOf(e)]),
  ]);
}

/**
 * `driftless audit --export FILE`: the tenant's whole chain as JSON lines, hashes included, so it
 * can be verified later without the server (`audit verify --file FILE`). Filters would cut holes
 * in the chain, so an export takes none.
 */
export async function auditExportCommand(api: Api, file: string, filters: AuditFilters): Promise<void> {
  const given = Object.entries(filters).filter(([, v]) => v !== undefined).map(([k]) => `--${k}`);
  if (given.length > 0) throw new DriftlessError('invalid-input', `--export writes the whole chain, so it can be verified; it cannot be combined with ${given.join(', ')}`);
  const entries = await fetchAll(api, '');
  const temporary = `${file}.partial`;
  writeFileSync(temporary, entries.map((e) => `${JSON.stringify(e)}\n`).join(''), { mode: 0o600 });
  renameSync(temporary, file);
  const head = entries.at(-1);
  process.stdout.write(`exported ${entries.length} audit entries to ${file}${head ? `; head: entry ${head.seq}, sha256 ${head.hash}` : ''}\n`);
}

/** Reads an export and walks its chain; a line that is not an audit entry is where the chain breaks. */
export function verifyExport(text: string): ChainVerdict {
  const verifier = createChainVerifier();
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  for (const [index, line] of lines.entries()) {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      value = undefined;
    }
    const [problem] = value === undefined ? [{ field: '', message: 'not JSON' }] : problems(AuditEntry, value, 1);
    if (problem) {
      const verdict = verifier.finish();
      return { ...verdict, ok: false, firstBroken: { seq: verdict.entries + 1, reason: `line ${index + 1} is not an audit entry (edited): ${problem.field ? `${problem.field}: ` : ''}${problem.message}` } };
    }
    if (verifier.push(value as AuditEntry)) break;
  }
  return verifier.finish();
}

/** `driftless audit verify [--file FILE]`: checks the server's chain, or an exported file offline; exits non-zero naming the first broken entry. */
export async function auditVerifyCommand(api: (() => Api) | null, file: string | undefined, format: OutputFormat): Promise<void> {
  let verdict: ChainVerdict;
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new DriftlessError('invalid-input', `--file: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    verdict = verifyExport(text);
  } else {
    if (!api) throw new DriftlessError('invalid-input', 'audit verify needs a server (--server) or an exported file (--file)');
    verdict = await api().get<ChainVerdict>('/v1/audit/verify');
  }
  const where = file === undefined ? 'audit chain' : `audit export ${file}`;
  if (format === 'json' || format === 'yaml') printData(verdict, format, () => []);
  if (verdict.firstBroken) throw new DriftlessError('conflict', `${where} is broken at entry ${verdict.firstBroken.seq}: ${verdict.firstBroken.reason}`);
  if (format === 'json' || format === 'yaml') return;
  const head = verdict.head;
  process.stdout.write(`${where} intact: ${verdict.entries} entries${head ? `; head: entry ${head.seq}, sha256 ${head.hash}` : ''}\n`);
}
