/**
 * Every store call the post office makes goes through a StoreGuard, engine-neutral:
 *
 * - a deadline: a call that has not settled after `timeoutMs` is answered UNAVAILABLE, so a
 *   frozen store (a stalled disk, DynamoDB not answering) fails requests fast instead of
 *   holding them; the call itself keeps running and its late result is still used where
 *   it matters (a late append still wakes its recipient, see PostOffice.commit);
 * - one error type: what an engine throws that is not a PoboxError (ENOSPC from a full
 *   disk, a socket error) becomes UNAVAILABLE, a condition to retry, not a bug;
 * - write health: consecutive failed writes, for readiness and
 *   pobox_store_consecutive_write_failures. Refusals that are the caller's fault
 *   (BAD_REQUEST, NOT_FOUND, ...) are answers, not failures.
 */
import { PoboxError, toPoboxError } from '../core/errors.js';

export interface WriteHealth {
  /** Writes that failed in a row (0 after any success). */
  consecutiveFailures: number;
  /** The last failure's message, while failing. */
  lastError: string | undefined;
  /** When the current run of failures started (ms since epoch). */
  failingSince: number | undefined;
}

const deadlineErrors = new WeakSet<PoboxError>();

/** True for the UNAVAILABLE a StoreGuard answers when the deadline passed (the call may still land). */
export function isStoreTimeout(err: unknown): boolean {
  return err instanceof PoboxError && deadlineErrors.has(err);
}

/** The store is what failed: readiness should say so. */
function storeFault(e: PoboxError): boolean {
  return e.code === 'UNAVAILABLE' || e.code === 'INTERNAL';
}

/** A store call waiting for its answer, until its deadline. */
interface Waiting {
  /** performance.now() at which it is answered UNAVAILABLE. */
  deadline: number;
  what: string;
  write: boolean;
  reject: (e: PoboxError) => void;
}

export class StoreGuard {
  private health: WriteHealth = { consecutiveFailures: 0, lastError: undefined, failingSince: undefined };
  private readonly listeners = new Set<(h: WriteHealth) => void>();
  /**
   * Calls not answered yet, oldest first. Every call of one guard has the same timeout, so
   * this is also deadline order: one timer, set for the oldest deadline, serves them all
   * (a timer per call was a Timeout object and a timer-list insert and removal on every
   * store call of every connection).
   */
  private readonly waiting = new Set<Waiting>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly timeoutMs: number) {}

  /** Run one store call under the deadline; `write` calls count towards write health. */
  call<T>(what: string, run: Promise<T>, write: boolean): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const w: Waiting = { deadline: performance.now() + this.timeoutMs, what, write, reject };
      this.waiting.add(w);
      this.timer ??= setTimeout(this.expire, this.timeoutMs);
      // Both outcomes are handled here, so a call that loses to the deadline never becomes an unhandled rejection.
      run.then(
        (r) => {
          if (!this.settle(w)) return;
          if (write) this.wrote(undefined);
          resolve(r);
        },
        (err: unknown) => {
          if (!this.settle(w)) return;
          const e = toPoboxError(err, 'UNAVAILABLE');
          if (write && storeFault(e)) this.wrote(e);
          reject(e);
        },
      );
    });
  }

  /** Take an answered call off the list; false when its deadline answered it already. */
  private settle(w: Waiting): boolean {
    if (!this.waiting.delete(w)) return false;
    // Nothing left to watch: no timer keeps the process alive for a deadline nobody waits on.
    if (this.waiting.size === 0 && this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    return true;
  }

  /** The oldest deadline came: answer every call past its deadline, and wait for the next one. */
  private readonly expire = (): void => {
    this.timer = undefined;
    const now = performance.now();
    for (const w of this.waiting) {
      if (w.deadline > now) {
        this.timer = setTimeout(this.expire, w.deadline - now);
        return;
      }
      this.waiting.delete(w);
      const e = new PoboxError('UNAVAILABLE', `store did not answer ${w.what} within ${this.timeoutMs} ms; try again`);
      deadlineErrors.add(e);
      if (w.write) this.wrote(e);
      w.reject(e);
    }
  };

  /** Record a write outcome seen outside `call` (a late append that finally succeeded). */
  wrote(err: PoboxError | undefined): void {
    const before = this.health.consecutiveFailures;
    if (!err) {
      if (before === 0) return;
      this.health = { consecutiveFailures: 0, lastError: undefined, failingSince: undefined };
    } else {
      this.health = { consecutiveFailures: before + 1, lastError: err.message, failingSince: this.health.failingSince ?? Date.now() };
    }
    for (const fn of this.listeners) fn(this.writeHealth());
  }

  writeHealth(): WriteHealth {
    return { ...this.health };
  }

  /** Follow changes of the write health (metrics). Returns the remover. */
  onWriteHealth(fn: (h: WriteHealth) => void): () => void {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  }
}
