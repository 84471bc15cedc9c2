/**
 * The rhythm of every live view: run `step` now, then again `intervalMs` after it finished (so
 * requests never overlap), not at all while the tab is hidden, and at once when it is shown again.
 */
export type LiveLoop = { stop: () => void; kick: () => void };

export function startLiveLoop(step: (signal: AbortSignal) => Promise<void>, intervalMs: number): LiveLoop {
  let stopped = false;
  let inFlight = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const controller = new AbortController();

  const tick = async () => {
    clearTimeout(timer);
    if (stopped || inFlight || document.hidden) return;
    inFlight = true;
    try {
      await step(controller.signal);
    } finally {
      inFlight = false;
      if (!stopped) timer = setTimeout(tick, intervalMs);
    }
  };
  const onVisibility = () => {
    if (!document.hidden) void tick();
  };

  document.addEventListener('visibilitychange', onVisibility);
  void tick();
  return {
    kick: () => void tick(),
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      controller.abort();
      document.removeEventListener('visibilitychange', onVisibility);
    },
  };
}
