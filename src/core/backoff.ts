/**
 * The one backoff of pobox: the client's reconnects, the Redis bus's reconnects, the
 * wake-up hook's retries and the DynamoDB engine's retries all draw their delays here.
 *
 * The ceiling grows exponentially, min(maxMs, baseMs * 2^attempt). How the delay is drawn
 * under it is the caller's choice:
 * - `full` (default): uniform in [0, ceiling). Spreads a fleet of clients over the whole
 *   interval, so they do not stampede a node that just restarted.
 * - `equal`: uniform in [ceiling/2, ceiling]. Never retries at once; for a server's own
 *   links (the Redis bus), where one caller waits and spreading matters less.
 * - `none`: the ceiling itself, for retries whose timing tests and operators reason about.
 */
export interface BackoffOptions {
  /** Ceiling of the first retry, in ms. */
  baseMs: number;
  /** Largest ceiling, in ms. */
  maxMs: number;
  jitter?: 'full' | 'equal' | 'none';
}

export interface BackoffStep {
  /** 0 for the first retry after a connection was lost or failed. */
  attempt: number;
  /** The upper bound the delay was drawn from: min(maxMs, baseMs * 2^attempt). */
  ceilingMs: number;
  delayMs: number;
}

export function backoffCeiling(attempt: number, { baseMs, maxMs }: BackoffOptions): number {
  // Cap the exponent so 2^attempt never overflows to Infinity on long outages.
  return Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 40));
}

/** The delay before retry number `attempt`; `random` returns a number in [0, 1). */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): BackoffStep {
  const ceilingMs = backoffCeiling(attempt, options);
  const jitter = options.jitter ?? 'full';
  const delayMs = jitter === 'none' ? ceilingMs : jitter === 'equal' ? Math.round(ceilingMs / 2 + (random() * ceilingMs) / 2) : Math.floor(random() * ceilingMs);
  return { attempt, ceilingMs, delayMs };
}

/** Counts attempts; `reset()` after a connection that reached the server's welcome. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly options: BackoffOptions,
    private readonly random: () => number = Math.random,
  ) {}

  next(): BackoffStep {
    return backoffDelay(this.attempt++, this.options, this.random);
  }

  reset(): void {
    this.attempt = 0;
  }
}
