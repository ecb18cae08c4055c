/**
 * Failures of work no request waits for (the sweeper, deletes the store left for later,
 * Redis presence, the wake-up hook, wake-up publishes): each one is
 * counted in pobox_background_failures_total{source}, and logged once per burst, so an
 * outage of a minute gives one warning line per source instead of thousands, and nothing
 * fails silently.
 *
 * A burst starts with a failure after `quietMs` without one from that source; its first
 * failure is logged with the error. When the next burst starts (or on `flush`), the line
 * says how many failures the previous burst had beyond the first.
 */
import type { Logger } from '../gateway/logger.js';
import type { PoboxMetrics } from '../metrics/metrics.js';

export type BackgroundSource = 'sweeper' | 'store_delete' | 'presence' | 'wakeup_hook' | 'wake_publish';

/** What a part that runs in the background calls when something failed. */
export type ReportFailure = (source: BackgroundSource, err: unknown, context?: Record<string, unknown>) => void;

interface Burst {
  lastAt: number;
  /** Failures after the logged one, not yet logged. */
  unlogged: number;
}

export class BackgroundFailures {
  private readonly bursts = new Map<BackgroundSource, Burst>();

  constructor(
    private readonly log: Logger,
    private readonly metrics: PoboxMetrics | undefined,
    private readonly quietMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  readonly report: ReportFailure = (source, err, context) => {
    this.metrics?.backgroundFailures.inc({ source });
    const at = this.now();
    const burst = this.bursts.get(source);
    if (burst && at - burst.lastAt < this.quietMs) {
      burst.lastAt = at;
      burst.unlogged++;
      return;
    }
    const previous = burst?.unlogged ?? 0;
    this.bursts.set(source, { lastAt: at, unlogged: 0 });
    this.log.warn(
      { source, err: err instanceof Error ? err.message : String(err), ...context, ...(previous > 0 ? { previousBurstMore: previous } : {}) },
      `background failure: ${source} (further failures of this source within ${Math.round(this.quietMs / 1000)} s are only counted)`,
    );
  };

  /** Log what the current bursts counted but did not log (at shutdown). */
  flush(): void {
    for (const [source, burst] of this.bursts) {
      if (burst.unlogged > 0) this.log.warn({ source, more: burst.unlogged }, `background failure: ${source} failed ${burst.unlogged} more times in its last burst`);
    }
    this.bursts.clear();
  }
}
