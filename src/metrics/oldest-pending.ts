/**
 * Age of the oldest pending message, without scanning every mailbox.
 *
 * We keep, per user, a lower bound of the send time of that user's oldest pending
 * message: the first message this node saw stored for the user (or the value read at
 * start-up). A lower bound stays a lower bound, because deletes only make a mailbox's
 * oldest message newer and new messages are newer still. At scrape time we check the
 * candidates oldest-first against the store (one small stats read each) and stop as soon
 * as the next candidate's bound is not older than the oldest confirmed message: nothing
 * after it can be older. At most `checkBudget` reads per scrape; the map holds at most
 * `maxUsers` users (when full, newly seen users are not tracked, and they are the ones
 * with the newest messages).
 */
import type { UserId } from '../core/ids.js';
import type { MailboxStats } from '../core/types.js';

export interface OldestPendingOptions {
  maxUsers?: number;
  checkBudget?: number;
}

export class OldestPending {
  private readonly bound = new Map<UserId, number>();
  private readonly maxUsers: number;
  private readonly checkBudget: number;

  constructor(opts: OldestPendingOptions = {}) {
    this.maxUsers = opts.maxUsers ?? 100_000;
    this.checkBudget = opts.checkBudget ?? 32;
  }

  /** A message sent at `sentAt` is now pending for `user`. */
  noteStored(user: UserId, sentAt: number): void {
    const known = this.bound.get(user);
    if (known !== undefined) {
      if (sentAt < known) this.bound.set(user, sentAt);
      return;
    }
    if (this.bound.size < this.maxUsers) this.bound.set(user, sentAt);
  }

  get tracked(): number {
    return this.bound.size;
  }

  /**
   * The age in ms of the oldest pending message among tracked users, checked against
   * `stats`; 0 when nothing is pending. A failing stats read leaves that user's bound.
   */
  async oldestAgeMs(stats: (user: UserId) => Promise<MailboxStats>, now: number): Promise<number> {
    const candidates = [...this.bound].sort((a, b) => a[1] - b[1]);
    let best: number | undefined; // send time of the oldest confirmed pending message
    let checks = 0;
    for (const [user, lowerBound] of candidates) {
      if (best !== undefined && lowerBound >= best) break;
      if (checks >= this.checkBudget) break;
      checks++;
      let s: MailboxStats;
      try {
        s = await stats(user);
      } catch {
        continue;
      }
      if (s.pending === 0 || s.oldestAgeMs === null) {
        this.bound.delete(user);
        continue;
      }
      const sentAt = now - s.oldestAgeMs;
      this.bound.set(user, sentAt);
      if (best === undefined || sentAt < best) best = sentAt;
    }
    return best === undefined ? 0 : Math.max(0, now - best);
  }
}
