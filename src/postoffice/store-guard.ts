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

export class StoreGuard {
  private health: WriteHealth = { consecutiveFailures: 0, lastError: undefined, failingSince: undefined };
  private readonly listeners = new Set<(h: WriteHealth) => void>();

  constructor(private readonly timeoutMs: number) {}

  /** Run one store call under the deadline; `write` calls count towards write health. */
  async call<T>(what: string, run: Promise<T>, write: boolean): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const e = new PoboxError('UNAVAILABLE', `store did not answer ${what} within ${this.timeoutMs} ms; try again`);
        deadlineErrors.add(e);
        reject(e);
      }, this.timeoutMs);
    });
    // The losing side of the race must never become an unhandled rejection.
    run.catch(() => undefined);
    try {
      const r = await Promise.race([run, late]);
      if (write) this.wrote(undefined);
      return r;
    } catch (err) {
      const e = toPoboxError(err, 'UNAVAILABLE');
      if (write && storeFault(e)) this.wrote(e);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

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
