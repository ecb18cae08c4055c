/**
 * Latency recording on Node's own HDR histogram (perf_hooks), in nanoseconds, reported
 * in milliseconds. No sampling or smoothing: every timed operation is recorded.
 * (bench/lib/ is shared by the benchmarks: add to this file, do not replace it.)
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';

export interface LatencySummary {
  count: number;
  /** Milliseconds. */
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export class Latency {
  private readonly h: RecordableHistogram = createHistogram();

  /** Record one duration in nanoseconds. */
  recordNs(ns: number | bigint): void {
    const v = typeof ns === 'bigint' ? ns : BigInt(Math.round(ns));
    this.h.record(v < 1n ? 1n : v);
  }

  /** Time one async operation and record it. */
  async time<T>(fn: () => Promise<T> | T): Promise<T> {
    const t0 = process.hrtime.bigint();
    const out = await fn();
    this.recordNs(process.hrtime.bigint() - t0);
    return out;
  }

  get count(): number {
    return this.h.count;
  }

  summary(): LatencySummary {
    const ms = (ns: number): number => round(ns / 1e6);
    if (this.h.count === 0) return { count: 0, mean: 0, p50: 0, p90: 0, p99: 0, max: 0 };
    return {
      count: this.h.count,
      mean: ms(this.h.mean),
      p50: ms(this.h.percentile(50)),
      p90: ms(this.h.percentile(90)),
      p99: ms(this.h.percentile(99)),
      max: ms(this.h.max),
    };
  }
}

/** Percentile of an ascending-sorted array (nearest rank). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** Four significant digits: enough to read, not so many that noise looks like data. */
export function round(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const digits = Math.max(0, 3 - Math.floor(Math.log10(Math.abs(x))));
  return Number(x.toFixed(Math.min(digits, 6)));
}

/** Run `worker` from `concurrency` loops until `total` operations are done; returns wall ms. */
export async function runConcurrent(total: number, concurrency: number, worker: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  const loop = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= total) return;
      await worker(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, loop));
  return performance.now() - t0;
}

export function shuffle<T extends { length: number; [i: number]: number }>(arr: T, random: () => number): T {
  for (let i = arr.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = arr[i]!;
    arr[i] = arr[j]!;
    arr[j] = t;
  }
  return arr;
}
