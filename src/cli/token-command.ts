import { parseDuration } from '../protocol/duration.ts';
import { DriftlessError } from '../protocol/errors.ts';
import type { Api } from './api-client.ts';
import { age, printData, type OutputFormat } from './output.ts';

export type TokenCreateFlags = { role?: string; expires?: string; description?: string; enroll?: boolean; site?: string; uses?: string; autoAccept?: boolean };
type TokenView = { id: string; role: string; description: string; state: string; createdAt: string; expiresAt: string | null; site?: string | null; uses?: number; maxUses?: number | null; autoAccept?: boolean };

/** The request body `token create` sends, from its flags; every mistake named before anything is sent. */
export function tokenRequest(flags: TokenCreateFlags): { path: string; body: Record<string, unknown> } {
  if (flags.expires !== undefined && parseDuration(flags.expires) === null) throw new DriftlessError('invalid-input', `--expires: "${flags.expires}" is not a duration such as 30d, 12h or 15m`);
  const common = { ...(flags.expires === undefined ? {} : { expires: flags.expires }), ...(flags.description === undefined ? {} : { description: flags.description }) };
  if (flags.enroll) {
    if (flags.role !== undefined) throw new DriftlessError('invalid-input', '--role: an enrollment token has no role (leave out --role, or --enroll)');
    if (flags.uses !== undefined && !/^[1-9][0-9]{0,6}$/.test(flags.uses)) throw new DriftlessError('invalid-input', `--uses: "${flags.uses}" must be a whole number from 1`);
    return {
      path: '/v1/enroll-tokens',
      body: { ...common, ...(flags.site === undefined ? {} : { site: flags.site }), ...(flags.uses === undefined ? {} : { uses: Number(flags.uses) }), autoAccept: flags.autoAccept === true },
    };
  }
  if (flags.site !== undefined || flags.uses !== undefined || flags.autoAccept) throw new DriftlessError('invalid-input', '--site, --uses and --auto-accept are for enrollment tokens: add --enroll');
  if (flags.role === undefined) throw new DriftlessError('invalid-input', '--role: required (viewer, operator or admin), or --enroll for an enrollment token');
  if (!['viewer', 'operator', 'admin'].includes(flags.role)) throw new DriftlessError('invalid-input', `--role: "${flags.role}" is not viewer, operator or admin`);
  return { path: '/v1/tokens', body: { ...common, role: flags.role } };
}

/** `driftless token create`: an API token (`--role`) or an enrollment token (`--enroll`); its secret is shown this once. */
export async function tokenCreateCommand(api: Api, flags: TokenCreateFlags, format: OutputFormat): Promise<void> {
  const { path, body } = tokenRequest(flags);
  const created = await api.post<{ token: string; id: string }>(path, body);
  if (format === 'json' || format === 'yaml') return printData(created, format, () => []);
  process.stdout.write(`${created.token}\n`);
}

/** `driftless token list [--enroll]`: this tenant's tokens, never their secrets. */
export async function tokenListCommand(api: Api, flags: { enroll?: boolean }, format: OutputFormat): Promise<void> {
  const tokens = await api.get<TokenView[]>(flags.enroll ? '/v1/enroll-tokens' : '/v1/tokens');
  const when = (iso: string | null) => (iso ? iso.replace(/\.\d+Z$/, 'Z') : 'never');
  printData(tokens, format, () =>
    flags.enroll
      ? [
          ['ID', 'STATE', 'SITE', 'USES', 'AUTO-ACCEPT', 'EXPIRES', 'AGE', 'DESCRIPTION'],
          ...tokens.map((t) => [t.id, t.state, t.site ?? '-', `${t.uses ?? 0}/${t.maxUses ?? '∞'}`, t.autoAccept ? 'yes' : 'no', when(t.expiresAt), age(t.createdAt), t.description]),
        ]
      : [['ID', 'ROLE', 'STATE', 'EXPIRES', 'AGE', 'DESCRIPTION'], ...tokens.map((t) => [t.id, t.role, t.state, when(t.expiresAt), age(t.createdAt), t.description])],
  );
}

/** `driftless token revoke ID [--enroll]`: refused from now on. */
export async function tokenRevokeCommand(api: Api, id: string, flags: { enroll?: boolean }): Promise<void> {
  await api.post(`${flags.enroll ? '/v1/enroll-tokens' : '/v1/tokens'}/${encodeURIComponent(id)}/revoke`, {});
  process.stdout.write(`${flags.enroll ? 'enrollment token' : 'token'} ${id} revoked\n`);
}

/** `driftless tenant create NAME`: the server operator makes a tenant; its first admin token is printed once. */
export async function tenantCreateCommand(api: Api, name: string, format: OutputFormat): Promise<void> {
  const created = await api.post<{ name: string; admin: { id: string; token: string } }>('/v1/tenants', { name });
  if (format === 'json' || format === 'yaml') return printData(created, format, () => []);
  process.stdout.write(`tenant ${created.name} created; its first admin token (shown once):\n${created.admin.token}\n`);
}

export async function tenantListCommand(api: Api, format: OutputFormat): Promise<void> {
  const tenants = await api.get<{ name: string; createdAt: string }[]>('/v1/tenants');
  printData(tenants, format, () => [['NAME', 'AGE'], ...tenants.map((t) => [t.name, age(t.createdAt)])]);
}

/** `driftless device accept|revoke NAME`. */
export async function deviceDecisionCommand(api: Api, decision: 'accept' | 'revoke', name: string): Promise<void> {
  const answer = await api.post<{ name: string; status: string; action: string }>(`/v1/devices/${encodeURIComponent(name)}/${decision}`, {});
  process.stdout.write(answer.action === 'unchanged' ? `device ${answer.name} was already ${answer.status}\n` : `device ${answer.name} ${answer.status}\n`);
}
