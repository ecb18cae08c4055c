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
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: opts.title,
    width: opts.width ?? 560,
    height: opts.height ?? 340,
    background: 'white',
    data: { values: points },
    mark: { type: 'line', point: true, strokeWidth: 2 },
    encoding: {
      x: {
        field: 'x',
        type: 'quantitative',
        title: opts.xTitle,
        scale: opts.xLog ? { type: 'log' } : { zero: false },
        axis: { format: '~s', grid: true },
      },
      y: {
        field: 'y',
        type: 'quantitative',
        title: opts.yTitle,
        scale: opts.yLog ? { type: 'log' } : { zero: true },
        axis: { grid: true },
      },
      color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'top-left' } },
      ...(hasStat ? { strokeDash: { field: 'stat', type: 'nominal', title: null, legend: { orient: 'bottom-right' } } } : {}),
      detail: hasStat ? [{ field: 'series' }, { field: 'stat' }] : { field: 'series' },
    },
  } as TopLevelSpec;
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
