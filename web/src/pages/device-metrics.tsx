import { lazy, Suspense, useMemo, useState } from 'react';
import { encodeName, queryString } from '../api/api-client.ts';
import type { MetricPoint } from '../api/resources.ts';
import { formatBytes } from '../format/quantity.ts';
import { usePoll } from '../live/use-poll.ts';

// uPlot comes with the chart, on demand: the overview's bundle does not carry it.
const MetricChart = lazy(() => import('../charts/metric-chart.tsx').then((m) => ({ default: m.MetricChart })));

/** How far back the charts look. */
const WINDOW_MS = 60 * 60 * 1000;

type MetricAnswer = { metrics: MetricPoint[] };

function useMetric(device: string, name: string, since: string) {
  return usePoll<MetricAnswer>(`/v1/devices/${encodeName(device)}/metrics${queryString({ name, since, limit: 1000 })}`);
}

/** Points oldest first, in uPlot's seconds. An empty chart still draws its axes: the frame says what will come. */
const series = (answer: MetricAnswer | undefined) =>
  [...(answer?.metrics ?? [])].reverse().map((p) => ({ t: Math.floor(new Date(p.at).getTime() / 1000), v: p.value }));

const percent = (v: number) => `${Math.round(v)}%`;

/** Memory ticks at 64 MiB … 512 GiB, doubling: values people recognise as sizes. */
const BYTE_STEPS = Array.from({ length: 14 }, (_, i) => 64 * 1024 * 1024 * 2 ** i);

export function CpuChart({ device }: { device: string }) {
  const [since] = useState(() => new Date(Date.now() - WINDOW_MS).toISOString());
  const { data } = useMetric(device, 'cpu_percent', since);
  const points = useMemo(() => series(data), [data]);
  const chart = useMemo(() => ({ times: points.map((p) => p.t), series: [{ label: 'CPU', color: '#2453c7', values: points.map((p) => p.v) }] }), [points]);
  if (!data) return <p className="empty">Loading CPU…</p>;
  return (
    <figure className="figure">
      <Suspense fallback={<div className="chart chart--placeholder" />}>
        <MetricChart times={chart.times} series={chart.series} unit="%" formatValue={percent} yRange={[0, 100]} windowSeconds={WINDOW_MS / 1000} />
      </Suspense>
      <figcaption className="muted small">{points.length === 0 ? 'No CPU samples in the last hour yet.' : `CPU use over the last hour, in percent; latest ${percent(points.at(-1)!.v)}.`}</figcaption>
    </figure>
  );
}

export function MemoryChart({ device }: { device: string }) {
  const [since] = useState(() => new Date(Date.now() - WINDOW_MS).toISOString());
  const used = useMetric(device, 'memory_used_bytes', since).data;
  const total = useMetric(device, 'memory_total_bytes', since).data;
  const chart = useMemo(() => {
    // Used and total are reported together, usually at the same instant; line them up by second.
    const usedPoints = series(used);
    const totals = new Map(series(total).map((p) => [p.t, p.v]));
    let lastTotal: number | null = null;
    const totalValues = usedPoints.map((p) => {
      lastTotal = totals.get(p.t) ?? lastTotal;
      return lastTotal;
    });
    return {
      times: usedPoints.map((p) => p.t),
      series: [
        { label: 'Used', color: '#2453c7', values: usedPoints.map((p) => p.v) },
        { label: 'Total', color: '#8a94a3', values: totalValues, dash: true },
      ],
      latest: usedPoints.at(-1)?.v ?? null,
      capacity: totalValues.at(-1) ?? null,
    };
  }, [used, total]);
  if (!used) return <p className="empty">Loading memory…</p>;
  return (
    <figure className="figure">
      <Suspense fallback={<div className="chart chart--placeholder" />}>
        <MetricChart times={chart.times} series={chart.series} unit="memory" formatValue={formatBytes} yIncrements={BYTE_STEPS} windowSeconds={WINDOW_MS / 1000} />
      </Suspense>
      <figcaption className="muted small">
        {chart.latest === null
          ? 'No memory samples in the last hour yet.'
          : `Memory in use over the last hour; latest ${formatBytes(chart.latest)}${chart.capacity ? ` of ${formatBytes(chart.capacity)}` : ''}.`}
      </figcaption>
    </figure>
  );
}
