import { createContext, useContext, useMemo, useState, type ReactNode } from 'react';
import type { ApiError } from '../api/api-client.ts';

/**
 * The app-wide view of live data: when anything last refreshed, and whether the server is
 * unreachable right now. Every poll reports here; the header shows the time and the banner.
 * Reporting and reading are separate contexts so the pages that report do not re-render on each report.
 */
export type LiveStatus = { updatedAt: Date | null; unreachable: ApiError | null };
export type LiveReporter = { success: () => void; failure: (error: ApiError) => void };

const StatusContext = createContext<LiveStatus>({ updatedAt: null, unreachable: null });
const ReporterContext = createContext<LiveReporter>({ success: () => {}, failure: () => {} });

export function LiveStatusProvider({ children }: { children: ReactNode }) {
  const [status, setStatus] = useState<LiveStatus>({ updatedAt: null, unreachable: null });
  const reporter = useMemo<LiveReporter>(
    () => ({
      success: () => setStatus({ updatedAt: new Date(), unreachable: null }),
      failure: (error) => {
        if (error.unreachable) setStatus((s) => ({ ...s, unreachable: error }));
      },
    }),
    [],
  );
  return (
    <ReporterContext.Provider value={reporter}>
      <StatusContext.Provider value={status}>{children}</StatusContext.Provider>
    </ReporterContext.Provider>
  );
}

export const useLiveStatus = () => useContext(StatusContext);
export const useLiveReporter = () => useContext(ReporterContext);
