import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Wave } from '../api/resources.ts';
import { waveProgress, type ServerWaveProgress } from './rollout-waves.ts';

const wave = (index: number, state: string, devices: number, updated = 0, failed = 0): Wave => ({ index, devices, updated, failed, state });
const counted = (index: number, c: Omit<ServerWaveProgress, 'index'>): ServerWaveProgress => ({ index, ...c });

describe('waveProgress', () => {
  test('every wave of the rollout, in its order, with the server’s counts where it has them', () => {
    const waves = [wave(0, 'done', 2, 2), wave(1, 'running', 10, 1), wave(2, 'pending', 50)];
    const progress = [counted(1, { devices: 10, updated: 4, failed: 1, waiting: 3, offline: 2 }), counted(0, { devices: 2, updated: 2, failed: 0, waiting: 0, offline: 0 })];
    assert.deepEqual(waveProgress(waves, progress), [
      { index: 0, state: 'done', devices: 2, updated: 2, failed: 0, waiting: 0, offline: 0 },
      { index: 1, state: 'running', devices: 10, updated: 4, failed: 1, waiting: 3, offline: 2 },
      { index: 2, state: 'pending', devices: 50, updated: 0, failed: 0, waiting: 0, offline: 0 },
    ]);
  });

  test('a wave not reached yet keeps its own counts, with nothing waiting or offline', () => {
    assert.deepEqual(waveProgress([wave(3, 'pending', 7, 0, 0)], []), [{ index: 3, state: 'pending', devices: 7, updated: 0, failed: 0, waiting: 0, offline: 0 }]);
  });

  test('the wave’s size and state are the rollout’s; only the counts come from the server', () => {
    const [row] = waveProgress([wave(0, 'paused', 8, 1, 0)], [counted(0, { devices: 99, updated: 5, failed: 2, waiting: 1, offline: 0 })]);
    assert.deepEqual(row, { index: 0, state: 'paused', devices: 8, updated: 5, failed: 2, waiting: 1, offline: 0 });
  });

  test('counts for a wave the rollout does not list are left out', () => {
    const rows = waveProgress([wave(0, 'running', 4)], [counted(5, { devices: 4, updated: 4, failed: 0, waiting: 0, offline: 0 })]);
    assert.deepEqual(rows, [{ index: 0, state: 'running', devices: 4, updated: 0, failed: 0, waiting: 0, offline: 0 }]);
  });

  test('the rollout’s waves are not changed', () => {
    const waves = [wave(0, 'running', 3, 1)];
    waveProgress(waves, [counted(0, { devices: 3, updated: 3, failed: 0, waiting: 0, offline: 0 })]);
    assert.deepEqual(waves, [wave(0, 'running', 3, 1)]);
  });

  test('no waves, no rows', () => {
    assert.deepEqual(waveProgress([], [counted(0, { devices: 1, updated: 0, failed: 0, waiting: 1, offline: 0 })]), []);
  });
});
