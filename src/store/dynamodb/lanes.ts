/**
 * One append at a time per user within one store instance (one gateway node), with
 * everything that arrives meanwhile coalesced into the next one.
 *
 * Sends to one user all write the user's last seq, so two appends of one node to the
 * same user racing each other can only both succeed one after the other: the loser
 * reads again and retries, and under a steady stream (a chat user receiving a burst)
 * the retries pile up faster than they commit. Queuing them here instead turns the
 * stream into group commits: while one transaction is in flight, the next sends wait and
 * then go together in one transaction (one meta read and write shared by all of them).
 * Appends from other nodes still race through the conditions on the meta item.
 */
import type { UserId } from '../../core/ids.js';
import type { AppendLimits, AppendOutcome } from '../contract.js';
import type { Entry } from './append.js';

type Run = (user: UserId, entries: Entry[], limits: AppendLimits, out: AppendOutcome[]) => Promise<void>;

interface Waiting {
  entries: Entry[];
  limits: AppendLimits;
  out: AppendOutcome[];
  done: () => void;
  fail: (err: unknown) => void;
}

const sameLimits = (a: AppendLimits, b: AppendLimits): boolean => a.maxMailboxMessages === b.maxMailboxMessages && a.maxMailboxBytes === b.maxMailboxBytes;

export class UserLanes {
  private readonly lanes = new Map<UserId, Waiting[]>();

  constructor(private readonly run: Run) {}

  /** Append `entries` (all for `user`, in order) after what this instance is already appending for that user. */
  append(user: UserId, entries: Entry[], limits: AppendLimits, out: AppendOutcome[]): Promise<void> {
    return new Promise((done, fail) => {
      const waiting = this.lanes.get(user);
      if (waiting) {
        waiting.push({ entries, limits, out, done, fail });
        return;
      }
      this.lanes.set(user, [{ entries, limits, out, done, fail }]);
      // drain() hands every failure to its waiters; a throw outside that (a bug) fails this append.
      this.drain(user).catch(fail);
    });
  }

  private async drain(user: UserId): Promise<void> {
    const waiting = this.lanes.get(user)!;
    while (waiting.length > 0) {
      // Everything queued with the same limits goes as one append, in arrival order.
      let n = 1;
      while (n < waiting.length && sameLimits(waiting[n]!.limits, waiting[0]!.limits)) n++;
      const group = waiting.slice(0, n);
      const entries: Entry[] = [];
      const where: Array<{ w: Waiting; index: number }> = [];
      for (const w of group) {
        for (const e of w.entries) {
          where.push({ w, index: e.index });
          entries.push({ index: entries.length, item: e.item });
        }
      }
      const out: AppendOutcome[] = new Array(entries.length);
      try {
        await this.run(user, entries, group[0]!.limits, out);
        where.forEach(({ w, index }, i) => (w.out[index] = out[i]!));
        for (const w of group) w.done();
      } catch (err) {
        for (const w of group) w.fail(err);
      }
      waiting.splice(0, n);
    }
    this.lanes.delete(user);
  }
}
