/**
 * Totals over many mailboxes, for `pobox stats` and the admin stats route: one page of
 * users at a time, so a caller can show progress and a server never walks everything
 * in one request.
 */
import type { UserId } from '../core/ids.js';
import type { MailboxStats } from '../core/types.js';

export interface MailboxTotals {
  users: number;
  /** Users with at least one pending message. */
  usersWithPending: number;
  devices: number;
  pending: number;
  pendingBytes: number;
  /** Age in ms of the oldest pending message, or null when nothing is pending. */
  oldestAgeMs: number | null;
}

export function emptyTotals(): MailboxTotals {
  return { users: 0, usersWithPending: 0, devices: 0, pending: 0, pendingBytes: 0, oldestAgeMs: null };
}

export function addStats(t: MailboxTotals, s: MailboxStats): MailboxTotals {
  t.users++;
  if (s.pending > 0) t.usersWithPending++;
  t.devices += s.devices.length;
  t.pending += s.pending;
  t.pendingBytes += s.pendingBytes;
  if (s.oldestAgeMs !== null && (t.oldestAgeMs === null || s.oldestAgeMs > t.oldestAgeMs)) t.oldestAgeMs = s.oldestAgeMs;
  return t;
}

export function mergeTotals(a: MailboxTotals, b: MailboxTotals): MailboxTotals {
  return {
    users: a.users + b.users,
    usersWithPending: a.usersWithPending + b.usersWithPending,
    devices: a.devices + b.devices,
    pending: a.pending + b.pending,
    pendingBytes: a.pendingBytes + b.pendingBytes,
    oldestAgeMs: a.oldestAgeMs === null ? b.oldestAgeMs : b.oldestAgeMs === null ? a.oldestAgeMs : Math.max(a.oldestAgeMs, b.oldestAgeMs),
  };
}

export interface TotalsPage {
  totals: MailboxTotals;
  /** Pass as `after` for the next page; absent on the last page. */
  next?: UserId;
}

/** Totals of one page of users (after `after`, at most `limit`). */
export async function totalsPage(
  source: { users(opts: { after?: UserId; limit?: number }): Promise<UserId[]>; stats(user: UserId): Promise<MailboxStats> },
  after: UserId | undefined,
  limit: number,
): Promise<TotalsPage> {
  const users = await source.users(after === undefined ? { limit } : { after, limit });
  const totals = emptyTotals();
  for (const u of users) addStats(totals, await source.stats(u));
  return users.length < limit ? { totals } : { totals, next: users[users.length - 1]! };
}
