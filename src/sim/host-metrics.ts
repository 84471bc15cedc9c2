import { createRandom } from './random.ts';

const GiB = 1024 ** 3;

/**
 * A simulated device's vital signs: CPU and memory wander (a seeded random walk) around a level
 * of their own, so a dashboard's charts show something a real box might, and the same seed draws
 * the same curves.
 */
export function simulatedHostMetrics(seed: number): () => Record<string, number> {
  const random = createRandom(seed);
  const memoryTotal = [2, 4, 8][random.int(3)]! * GiB;
  let cpu = 5 + random.next() * 40;
  let memoryShare = 0.3 + random.next() * 0.4;
  let uptime = Math.round(random.next() * 30 * 86_400);
  return () => {
    cpu = Math.min(98, Math.max(1, cpu + (random.next() - 0.5) * 12));
    memoryShare = Math.min(0.95, Math.max(0.1, memoryShare + (random.next() - 0.5) * 0.04));
    uptime += 10;
    return {
      cpu_percent: Math.round(cpu * 10) / 10,
      memory_used_bytes: Math.round(memoryTotal * memoryShare),
      memory_total_bytes: memoryTotal,
      load1: Math.round((cpu / 25) * 100) / 100,
      uptime_seconds: uptime,
    };
  };
}
