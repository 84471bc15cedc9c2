import { useEffect, type ReactNode } from 'react';

/** The page's one h1, with whatever sits beside it (a state, actions); also names the browser tab. */
export function PageHeader({ title, subtitle, children }: { title: ReactNode; subtitle?: ReactNode; children?: ReactNode }) {
  useEffect(() => {
    if (typeof title === 'string') document.title = `${title} · Driftless`;
  }, [title]);
  return (
    <div className="page-head">
      <div className="page-head__titles">
        <h1>{title}</h1>
        {subtitle ? <p className="page-head__subtitle">{subtitle}</p> : null}
      </div>
      {children ? <div className="page-head__aside">{children}</div> : null}
    </div>
  );
}
