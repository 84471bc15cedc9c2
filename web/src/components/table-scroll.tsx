import type { ReactNode } from 'react';

/**
 * A wide table scrolls sideways inside its own box instead of widening the page. The box is
 * focusable and named, so keyboard users can scroll it too.
 */
export function TableScroll({ label, children, tall }: { label: string; children: ReactNode; tall?: boolean }) {
  return (
    <div className={tall ? 'table-scroll table-scroll--tall' : 'table-scroll'} role="region" aria-label={label} tabIndex={0}>
      {children}
    </div>
  );
}
