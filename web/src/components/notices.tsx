import type { ReactNode } from 'react';
import type { ApiError } from '../api/api-client.ts';

/** An API error, in the server's own words. Unreachable servers get the global banner instead. */
export function ErrorNotice({ error }: { error: ApiError | null }) {
  if (!error || error.unreachable) return null;
  return (
    <div className="notice notice--error" role="alert">
      {error.message}
    </div>
  );
}

/** What an empty table or list means, said in words rather than left blank. */
export function EmptyState({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

/** First load: nothing to show yet. */
export function Loading({ what }: { what: string }) {
  return (
    <p className="empty" aria-live="polite">
      Loading {what}…
    </p>
  );
}
