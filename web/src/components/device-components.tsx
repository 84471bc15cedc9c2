import type { ComponentView } from '../api/resources.ts';

/** A device's components in one line each: "pos 2.4.1 → 2.4.2" when it runs something other than desired. */
export function ComponentVersions({ components }: { components: ComponentView[] }) {
  if (components.length === 0) return <span className="muted">none assigned</span>;
  return (
    <ul className="inline-list">
      {components.map((c) => (
        <li key={c.name} title={c.reason ? `${c.state}: ${c.reason}` : c.state}>
          <span>{c.name}</span>{' '}
          {c.version === c.desiredVersion ? (
            <span className="mono">{c.version ?? '—'}</span>
          ) : (
            <span className="mono text-warn">
              {c.version ?? 'none'} → {c.desiredVersion ?? 'none'}
            </span>
          )}
        </li>
      ))}
    </ul>
  );
}
