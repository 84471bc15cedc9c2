import type { ReactNode } from 'react';
import { Link, useLocation } from 'wouter';
import { formatClock } from './format/time.ts';
import { useLiveStatus } from './live/live-status.tsx';
import { useSession } from './session/session.tsx';

const SECTIONS = [
  { href: '/', label: 'Overview' },
  { href: '/rollouts', label: 'Rollouts' },
  { href: '/drift', label: 'Drift' },
  { href: '/devices', label: 'Devices' },
  { href: '/sites', label: 'Sites' },
  { href: '/incidents', label: 'Incidents' },
  { href: '/audit', label: 'Audit' },
] as const;

const isCurrent = (href: string, location: string) => (href === '/' ? location === '/' : location === href || location.startsWith(`${href}/`));

/** Header, main navigation and the live-data status around every signed-in page. */
export function AppShell({ children }: { children: ReactNode }) {
  const [location] = useLocation();
  const { whoami, signOut } = useSession();
  const live = useLiveStatus();
  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="header">
        <Link href="/" className="brand">
          <span className="brand__mark" aria-hidden="true" />
          Driftless
        </Link>
        <nav aria-label="Main" className="nav">
          <ul>
            {SECTIONS.map((s) => (
              <li key={s.href}>
                <Link href={s.href} aria-current={isCurrent(s.href, location) ? 'page' : undefined}>
                  {s.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="header__session">
          {live.updatedAt ? (
            <span className="updated-at" data-testid="updated-at" aria-live="off">
              updated {formatClock(live.updatedAt)}
            </span>
          ) : null}
          {whoami ? (
            <span className="who" title={`tenant ${whoami.tenant}`}>
              <span title={whoami.actor}>{whoami.name ?? whoami.actor}</span> <span className="who__role">{whoami.role}</span>
            </span>
          ) : null}
          <button type="button" className="button button--quiet" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      {live.unreachable ? (
        <div className="banner" role="status">
          {live.unreachable.message} Showing the last data received; retrying every few seconds.
        </div>
      ) : null}
      <main id="main" className="main" tabIndex={-1}>
        {children}
      </main>
    </div>
  );
}
