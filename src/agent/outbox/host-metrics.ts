import { statfsSync } from 'node:fs';
import { cpus, freemem, loadavg, totalmem, uptime } from 'node:os';

/**
 * The host's vital signs, sampled for telemetry. CPU is the busy share of all cores since the
 * previous sample (one too soon after the last leaves CPU out); disk is the
 * file system holding the agent's data, where a full disk would hurt first.
 */
/** CPU time (summed over the cores, in ms) a CPU share is measured over at the least. */
const MIN_CPU_WINDOW_MS = 1000;

export function createHostMetrics(dataDir: string): () => Record<string, number> {
  let previous = cpuTimes();
  return () => {
    const figures: Record<string, number> = {
      memory_used_bytes: totalmem() - freemem(),
      memory_total_bytes: totalmem(),
      load1: loadavg()[0] ?? 0,
      uptime_seconds: Math.round(uptime()),
    };
    const times = cpuTimes();
    const total = times.total - previous.total;
    // A share of a few clock ticks reads 0% or 100% by chance (a sample taken just after the
    // agent started, say): CPU is left out until a second of CPU time has passed.
    if (total >= MIN_CPU_WINDOW_MS) {
      figures.cpu_percent = Math.round((1000 * (times.busy - previous.busy)) / total) / 10;
      previous = times;
    }
    try {
      const fs = statfsSync(dataDir);
      figures.disk_total_bytes = fs.blocks * fs.bsize;
      figures.disk_used_bytes = (fs.blocks - fs.bfree) * fs.bsize;
    } catch {
      // No figure rather than a wrong one.
    }
    return figures;
  };
}

function cpuTimes(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const cpu of cpus()) {
    const t = cpu.times;
    total += t.user + t.nice + t.sys + t.idle + t.irq;
    busy += t.user + t.nice + t.sys + t.irq;
  }
  return { busy, total };
}
