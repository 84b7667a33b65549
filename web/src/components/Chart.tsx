// Charts with uPlot: chosen because it is small (~50 KB), draws on canvas and stays fast with
// tens of thousands of points, and has no dependencies — the dashboard's charts are simple
// lines and bars, so a grammar-of-graphics library (Observable Plot) would be weight
// without use. Every chart carries a text alternative (aria-label plus a visually hidden
// table of its values) because a canvas says nothing to a screen reader.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { useEffect, useRef } from "preact/hooks";

const ACCENT = "#1f5fbf";
const BAD = "#b3261e";

function useUPlot(make: (el: HTMLDivElement, width: number) => uPlot, key: unknown[]) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (el === null) return;
    const plot = make(el, Math.max(200, el.clientWidth));
    const resize = new ResizeObserver(() =>
      plot.setSize({ width: Math.max(200, el.clientWidth), height: plot.height }),
    );
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, key);
  return ref;
}

/** Values over time (x: ISO times). */
export function LineChart({
  label,
  times,
  values,
  unit,
  height = 160,
}: {
  label: string;
  times: string[];
  values: number[];
  unit: string;
  height?: number;
}) {
  const xs = times.map((t) => new Date(t).getTime() / 1000);
  const ref = useUPlot(
    (el, width) =>
      new uPlot(
        {
          width,
          height,
          // One point alone would get a scale of years around it: pad it by a day each side.
          ...(xs.length === 1
            ? {
                scales: {
                  x: { range: [(xs[0] ?? 0) - 86_400, (xs[0] ?? 0) + 86_400] as uPlot.Range.MinMax },
                },
              }
            : {}),
          series: [{}, { label: unit, stroke: BAD, width: 2, points: { show: true, size: 6 } }],
          axes: [{}, { size: 60 }],
          legend: { show: false },
        },
        [xs, values],
        el,
      ),
    [JSON.stringify(times), JSON.stringify(values)],
  );
  return (
    <figure class="chart">
      <div ref={ref} role="img" aria-label={label} />
      <figcaption class="sr-only">
        {label}: {times.map((t, i) => `${t.slice(0, 19)} ${values[i] ?? ""}`).join("; ")}
      </figcaption>
    </figure>
  );
}

/** One bar per category (`highlight` bars drawn in red: e.g. flagged counts). */
export function BarChart({
  label,
  categories,
  values,
  highlight,
  names = ["samples", "flagged"],
  height = 180,
}: {
  label: string;
  categories: string[];
  values: number[];
  highlight?: number[];
  /** The two series' names, for the legend. */
  names?: [string, string];
  height?: number;
}) {
  const xs = categories.map((_, i) => i);
  const ref = useUPlot(
    (el, width) => {
      const bars = uPlot.paths.bars?.({ size: [0.6, 60] });
      return new uPlot(
        {
          width,
          height,
          // Bars grow from zero: an axis starting elsewhere exaggerates differences.
          scales: {
            x: { time: false, range: [-0.5, categories.length - 0.5] },
            y: { range: (_u: uPlot, _min: number, max: number) => [0, max > 0 ? max * 1.08 : 1] },
          },
          series: [
            {},
            { label: names[0], fill: ACCENT, stroke: ACCENT, paths: bars, points: { show: false } },
            ...(highlight === undefined
              ? []
              : [{ label: names[1], fill: BAD, stroke: BAD, paths: bars, points: { show: false } }]),
          ],
          axes: [
            {
              splits: () => xs,
              // At most ~12 labels, so a histogram's edges stay readable.
              values: (_u: uPlot, splits: number[]) =>
                splits.map((i) =>
                  i % Math.ceil(categories.length / 12) === 0 ? (categories[i] ?? "").slice(0, 14) : "",
                ),
              rotate: categories.length > 6 ? -30 : 0,
              size: categories.length > 6 ? 70 : 40,
            },
            { size: 60 },
          ],
          legend: { show: highlight !== undefined },
        },
        highlight === undefined ? [xs, values] : [xs, values, highlight],
        el,
      );
    },
    [JSON.stringify(categories), JSON.stringify(values), JSON.stringify(highlight ?? null)],
  );
  return (
    <figure class="chart">
      <div ref={ref} role="img" aria-label={label} />
      <figcaption class="sr-only">
        {label}:{" "}
        {categories
          .map((c, i) => `${c} ${values[i] ?? 0}${highlight ? ` (${highlight[i] ?? 0} ${names[1]})` : ""}`)
          .join("; ")}
      </figcaption>
    </figure>
  );
}

/** A tiny trend line for a table cell, drawn as SVG (a canvas per row would be heavy). */
export function Sparkline({ values, label }: { values: number[]; label: string }) {
  if (values.length === 0) return <span class="muted">no scans</span>;
  const w = 90;
  const h = 22;
  const max = Math.max(...values, 1e-9);
  const pts = values.map(
    (v, i) => `${values.length === 1 ? w / 2 : (i / (values.length - 1)) * w},${h - (v / max) * (h - 2) - 1}`,
  );
  return (
    <svg class="spark" width={w} height={h} viewBox={`0 0 ${w} ${h}`} role="img" aria-label={label}>
      <polyline points={pts.join(" ")} fill="none" stroke={BAD} stroke-width="1.5" />
      {values.length === 1 && <circle cx={w / 2} cy={pts[0]?.split(",")[1]} r="2.5" fill={BAD} />}
    </svg>
  );
}
