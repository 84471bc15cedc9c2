import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { formatTimestamp } from '../format/time.ts';

const pad = (n: number) => String(n).padStart(2, '0');
/** Time ticks as the rest of the dashboard writes times: 24-hour, the date where the day changes. */
function timeTicks(splits: number[]): string[] {
  return splits.map((seconds, i) => {
    const date = new Date(seconds * 1000);
    const clock = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
    const previous = i > 0 ? new Date(splits[i - 1]! * 1000) : null;
    return previous === null || previous.toDateString() !== date.toDateString() ? `${clock}\n${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` : clock;
  });
}

/** The x range of a chart with no points yet. */
const lastHour = (): [number, number] => {
  const now = Date.now() / 1000;
  return [now - 3600, now];
};

export type ChartSeries = { label: string; color: string; values: (number | null)[]; dash?: boolean };

/**
 * A time series chart (uPlot): time on x, the metric on y with its unit. Loaded with import()
 * from the device page only, so uPlot is not in the overview's bundle.
 */
export function MetricChart({
  times,
  series,
  unit,
  formatValue,
  yRange,
  yIncrements,
  windowSeconds,
}: {
  times: number[];
  series: ChartSeries[];
  unit: string;
  formatValue: (value: number) => string;
  yRange?: [number, number];
  /** Tick steps for the y axis (bytes want powers of two, not 2.3 GiB). */
  yIncrements?: number[];
  /** Show this many trailing seconds up to now, however few points there are (a lone point would stretch the axis over a day or more). */
  windowSeconds?: number;
}) {
  const host = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | null>(null);
  const latestTime = useRef<number | null>(null);
  latestTime.current = times.at(-1) ?? null;
  const shape = series.map((s) => s.label).join('|');

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const options: uPlot.Options = {
      width: Math.max(240, element.clientWidth),
      height: 200,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        // One sample would stretch the axis over years; give a lone point a few minutes either side.
        x: {
          time: true,
          range: (_u, min, max) => {
            if (windowSeconds !== undefined) {
              // From the data itself, not uPlot's min and max: it has stretched a lone point by then.
              const end = Math.max(Date.now() / 1000, latestTime.current ?? 0);
              return [end - windowSeconds, end];
            }
            return min === null || max === null || !Number.isFinite(min) ? lastHour() : max - min < 60 ? [min - 300, max + 60] : [min, max];
          },
        },
        y: yRange ? { range: yRange } : { range: (_u, min, max) => (max === null || !Number.isFinite(max) ? [0, 1] : [0, Math.max(max * 1.1, min + 1)]) } },
      axes: [
        { stroke: '#5b6472', grid: { stroke: '#eceef1' }, ticks: { stroke: '#d5d9df' }, label: 'time', values: (_u, splits) => timeTicks(splits) },
        { stroke: '#5b6472', grid: { stroke: '#eceef1' }, ticks: { stroke: '#d5d9df' }, label: unit, size: 64, incrs: yIncrements, values: (_u, splits) => splits.map((v) => formatValue(v)) },
      ],
      series: [{ label: 'Time', value: (_u: uPlot, v: number | null) => (v === null ? '—' : formatTimestamp(new Date(v * 1000).toISOString())) }, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 1.5, points: { show: times.length < 60, size: 5 }, dash: s.dash ? [4, 4] : undefined, fill: s.dash ? undefined : `${s.color}1f`, value: (_u: uPlot, v: number | null) => (v === null ? '—' : formatValue(v)) }))],
    };
    chart.current = new uPlot(options, [times, ...series.map((s) => s.values)], element);
    const observer = new ResizeObserver(() => chart.current?.setSize({ width: Math.max(240, element.clientWidth), height: 200 }));
    observer.observe(element);
    return () => {
      observer.disconnect();
      chart.current?.destroy();
      chart.current = null;
    };
    // The chart is rebuilt only when its series change; new points go through setData below.
  }, [shape, unit, windowSeconds]);

  useEffect(() => {
    chart.current?.setData([times, ...series.map((s) => s.values)]);
  }, [times, series]);

  return <div className="chart" ref={host} />;
}
