import assert from 'node:assert/strict';
import { cpus, tmpdir } from 'node:os';
import { describe, test } from 'node:test';
import { createHostMetrics } from './host-metrics.ts';

describe('host metrics', () => {
  test('memory and disk figures are consistent; no CPU share from a sample taken at once', () => {
    const sample = createHostMetrics(tmpdir());
    const first = sample();
    assert.equal(first.cpu_percent, undefined, 'too soon after the start to say');
    assert.ok(first.memory_total_bytes! > 0 && first.memory_used_bytes! > 0 && first.memory_used_bytes! <= first.memory_total_bytes!);
    assert.ok(first.disk_total_bytes! > 0 && first.disk_used_bytes! >= 0 && first.disk_used_bytes! <= first.disk_total_bytes!);
    assert.ok(first.uptime_seconds! > 0);
  });

  test('once enough CPU time has passed, the busy share is a percentage; a disk that is not there gives no disk figures', () => {
    const sample = createHostMetrics('/nonexistent/driftless-data');
    // Busy until the machine's cores have spent well over the one second of CPU time a share needs.
    const until = Date.now() + Math.max(1, 2000 / cpus().length) * 2;
    let spin = 0;
    while (Date.now() < until) spin++;
    const figures = sample();
    assert.ok(spin > 0);
    assert.equal(typeof figures.cpu_percent, 'number');
    assert.ok(figures.cpu_percent! >= 0 && figures.cpu_percent! <= 100, String(figures.cpu_percent));
    assert.equal(figures.disk_total_bytes, undefined);
  });
});
