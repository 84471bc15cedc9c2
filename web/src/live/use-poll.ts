import { useCallback, useEffect, useRef, useState } from 'react';
import { ApiError } from '../api/api-client.ts';
import { useApi } from '../session/session.tsx';
import { useLiveReporter } from './live-status.tsx';
import { startLiveLoop, type LiveLoop } from './live-loop.ts';

/** How often live pages ask again. */
export const POLL_INTERVAL_MS = 2000;

export type Poll<T> = {
  /** The last good answer; kept while the next request is in flight or failing. */
  data: T | undefined;
  /** The last request's error for this path, cleared by the next success. */
  error: ApiError | null;
  /** The data answers an earlier path (filters changed, the new answer is on its way). */
  stale: boolean;
  /** Ask now instead of waiting for the next tick (after an action, say). */
  refresh: () => void;
};

export const asApiError = (cause: unknown) => (cause instanceof ApiError ? cause : new ApiError(0, 'unreachable', String(cause)));

/** GET `path` live (see startLiveLoop). A null path asks nothing: the page does not know what to ask yet. */
export function usePoll<T>(path: string | null, intervalMs = POLL_INTERVAL_MS): Poll<T> {
  const api = useApi();
  const reporter = useLiveReporter();
  const [state, setState] = useState<{ path: string | null; data: T | undefined; error: ApiError | null; errorPath: string | null }>({
    path: null,
    data: undefined,
    error: null,
    errorPath: null,
  });
  const loop = useRef<LiveLoop | null>(null);

  useEffect(() => {
    if (path === null) return;
    let current = true;
    loop.current = startLiveLoop(async (signal) => {
      try {
        const data = await api.get<T>(path, signal);
        if (!current) return;
        setState({ path, data, error: null, errorPath: null });
        reporter.success();
      } catch (cause) {
        if (!current || signal.aborted) return;
        const error = asApiError(cause);
        setState((s) => ({ ...s, error, errorPath: path }));
        // Forbidden stays forbidden while this token is signed in (its role does not change): stop asking.
        if (error.status === 403) {
          loop.current?.stop();
          return;
        }
        reporter.failure(error);
      }
    }, intervalMs);
    return () => {
      current = false;
      loop.current?.stop();
    };
  }, [path, intervalMs, api, reporter]);

  const refresh = useCallback(() => loop.current?.kick(), []);
  return { data: state.data, error: state.errorPath === path ? state.error : null, stale: state.path !== path, refresh };
}
