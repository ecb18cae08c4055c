/**
 * Charts as SVG files, drawn by vega-lite + vega in Node with no canvas (the SVG
 * renderer estimates text widths when no canvas is installed, which is fine for axes).
 */
import { writeFileSync } from 'node:fs';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export interface SeriesPoint {
  series: string;
  x: number;
  y: number;
  /** A second grouping drawn as the line's dash pattern (e.g. p50 vs p99). */
  stat?: string;
}

export interface LineChartOptions {
  title: string;
  xTitle: string;
  yTitle: string;
  xLog?: boolean;
  yLog?: boolean;
  width?: number;
  height?: number;
}

export async function lineChartSvg(points: SeriesPoint[], opts: LineChartOptions): Promise<string> {
  const hasStat = points.some((p) => p.stat !== undefined);
  // On log axes, label the powers of ten only: the in-between ticks are clutter.
  const decades = (vals: number[]): number[] | undefined => {
    const pos = vals.filter((v) => v > 0);
    if (pos.length === 0) return undefined;
    const lo = Math.floor(Math.log10(Math.min(...pos)));
    const hi = Math.ceil(Math.log10(Math.max(...pos)));
    return Array.from({ length: hi - lo + 1 }, (_, i) => 10 ** (lo + i));
  };
  const xValues = opts.xLog ? decades(points.map((p) => p.x)) : undefined;
  const yValues = opts.yLog ? decades(points.map((p) => p.y)) : undefined;
  const encoding = {
    x: {
      field: 'x',
      type: 'quantitative',
      title: opts.xTitle,
      scale: opts.xLog ? { type: 'log' } : { zero: false },
      axis: { format: '~s', grid: true, ...(xValues ? { values: xValues } : {}) },
    },
    y: {
      field: 'y',
      type: 'quantitative',
      title: opts.yTitle,
      scale: opts.yLog ? { type: 'log' } : { zero: true },
      axis: { grid: true, ...(yValues ? { values: yValues, format: '~g' } : {}) },
    },
    color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom', direction: 'vertical', labelLimit: 400 } },
  };
  const mark = { type: 'line', point: true, strokeWidth: 2 };
  // A second grouping (p50, p99) gets a panel each, side by side on the same scales.
  const spec = (
    hasStat
      ? {
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
          title: opts.title,
          background: 'white',
          data: { values: points },
          facet: { column: { field: 'stat', type: 'nominal', title: null, header: { labelFontSize: 13, labelFontWeight: 'bold' } } },
          spec: { width: (opts.width ?? 760) / 2, height: opts.height ?? 340, mark, encoding },
        }
      : {
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
          title: opts.title,
          width: opts.width ?? 560,
          height: opts.height ?? 340,
          background: 'white',
          data: { values: points },
          mark,
          encoding,
        }
  ) as TopLevelSpec;
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export async function writeLineChart(file: string, points: SeriesPoint[], opts: LineChartOptions): Promise<void> {
  writeFileSync(file, await lineChartSvg(points, opts));
}

export interface BarPoint {
  /** One bar per group value... */
  group: string;
  /** ...in one panel per facet value. */
  facet: string;
  value: number;
}

/** Grouped bars, one panel per facet (e.g. one per operation), each with its own y scale. */
export async function writeBarChart(file: string, points: BarPoint[], opts: { title: string; yTitle: string; yLog?: boolean }): Promise<void> {
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: opts.title,
    background: 'white',
    data: { values: points },
    facet: { column: { field: 'facet', type: 'nominal', title: null, sort: [...new Set(points.map((p) => p.facet))], header: { labelFontSize: 13, labelFontWeight: 'bold' } } },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 200,
      height: 260,
      layer: [
        {
          mark: { type: 'bar' },
          encoding: {
            x: { field: 'group', type: 'nominal', title: null, sort: null, axis: { labelAngle: -35, labelLimit: 300 } },
            y: { field: 'value', type: 'quantitative', title: opts.yTitle, ...(opts.yLog ? { scale: { type: 'log' } } : {}) },
            color: { field: 'group', type: 'nominal', legend: null, sort: null },
          },
        },
        {
          mark: { type: 'text', dy: -6, fontSize: 10 },
          encoding: {
            x: { field: 'group', type: 'nominal', sort: null },
            y: { field: 'value', type: 'quantitative' },
            text: { field: 'value', type: 'quantitative', format: ',.0f' },
          },
        },
      ],
    },
  } as TopLevelSpec;
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    writeFileSync(file, await view.toSVG());
  } finally {
    view.finalize();
  }
}
