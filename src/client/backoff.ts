/**
 * Reconnect delays: exponential backoff with "full jitter" (a uniform random delay between
 * 0 and the current ceiling). Spreading reconnects over the whole interval keeps a fleet of
 * clients from stampeding a node that just restarted.
 */
export interface BackoffOptions {
  /** Ceiling of the first retry, in ms. */
  baseMs: number;
  /** Largest ceiling, in ms. */
  maxMs: number;
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
  return { attempt, ceilingMs, delayMs: Math.floor(random() * ceilingMs) };
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
