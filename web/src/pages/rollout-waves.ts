import type { Wave } from '../api/resources.ts';

/** A wave's progress as the server counts it (GET /v1/rollouts/:name, `progress`): waiting and offline beside updated and failed. */
export type ServerWaveProgress = { index: number; devices: number; updated: number; failed: number; waiting: number; offline: number };

/** A wave as the rollout page shows it: the rollout's wave (its state) with the server's counts of its devices. */
export type WaveProgress = Wave & { waiting: number; offline: number };

/**
 * The wave table's rows: every wave of the rollout, with the server's counts where its devices
 * have been chosen (a wave not reached yet has none, so it is all to come).
 */
export function waveProgress(waves: readonly Wave[], progress: readonly ServerWaveProgress[]): WaveProgress[] {
  const byIndex = new Map(progress.map((p) => [p.index, p]));
  return waves.map((wave) => {
    const counted = byIndex.get(wave.index);
    return counted ? { ...wave, updated: counted.updated, failed: counted.failed, waiting: counted.waiting, offline: counted.offline } : { ...wave, waiting: 0, offline: 0 };
  });
}

/** How many devices a rollout has chosen, over all its waves. */
export const rolloutSize = (waves: readonly Wave[]): number => waves.reduce((sum, w) => sum + w.devices, 0);
