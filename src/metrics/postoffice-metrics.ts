/**
 * Feeds metrics from a post office's events. Pending totals move with each event
 * (stored +1, acked/expired/removed minus what was deleted), so a scrape never scans.
 *
 * The totals start at zero unless `seedPending` ran first; run it before the server
 * accepts traffic, or events racing the walk would be counted twice.
 */
import type { PostOffice } from '../postoffice/post-office.js';
import type { MailboxStore } from '../store/contract.js';
import type { PoboxMetrics } from './metrics.js';
import { OldestPending, type OldestPendingOptions } from './oldest-pending.js';

export interface AttachOptions extends OldestPendingOptions {}

export interface AttachedMetrics {
  readonly oldest: OldestPending;
  detach(): void;
}

export function attachPostOffice(po: PostOffice, metrics: PoboxMetrics, opts: AttachOptions = {}): AttachedMetrics {
  const oldest = new OldestPending(opts);
  const off = [
    po.events.on('stored', (e) => {
      metrics.sent.inc();
      metrics.pendingMessages.inc();
      metrics.pendingBytes.inc(e.message.bytes);
      oldest.noteStored(e.user, e.message.sentAt);
    }),
    po.events.on('acked', (e) => {
      metrics.acks.inc();
      if (e.deleted > 0) {
        metrics.acked.inc(e.deleted);
        metrics.pendingMessages.dec(e.deleted);
        metrics.pendingBytes.dec(e.deletedBytes);
      }
    }),
    po.events.on('expired', (e) => {
      metrics.expired.inc(e.count);
      metrics.pendingMessages.dec(e.count);
      metrics.pendingBytes.dec(e.bytes);
    }),
    po.events.on('removed', (e) => {
      metrics.removed.inc({ reason: e.reason }, e.count);
      metrics.pendingMessages.dec(e.count);
      metrics.pendingBytes.dec(e.bytes);
    }),
    po.events.on('restored', (e) => {
      metrics.pendingMessages.inc(e.count);
      metrics.pendingBytes.inc(e.bytes);
      if (e.oldestSentAt !== undefined) oldest.noteStored(e.user, e.oldestSentAt);
    }),
    po.events.on('rejected', (e) => metrics.rejected(e.code)),
  ];
  const probe = async (): Promise<void> => {
    const ageMs = await oldest.oldestAgeMs((user) => po.stats(user), po.now());
    metrics.oldestPendingAge.set(ageMs / 1000);
  };
  metrics.setOldestProbe(probe);
  return {
    oldest,
    detach() {
      for (const f of off) f();
      metrics.setOldestProbe(undefined);
    },
  };
}

export interface SeedOptions {
  /** Stop walking after this many users (the totals then cover only those; `complete` says so). */
  maxUsers?: number;
  pageSize?: number;
  onProgress?: (usersWalked: number) => void;
}

export interface SeedResult {
  users: number;
  pending: number;
  pendingBytes: number;
  complete: boolean;
}

/**
 * Set the pending totals from the store by walking every mailbox once. Cheap for the
 * embedded engine (one meta read per user); a multi-node deployment on DynamoDB should
 * not seed (each node would add the whole table) and reads absolute totals from
 * `pobox stats` instead. See docs/operations.md.
 */
export async function seedPending(store: MailboxStore, metrics: PoboxMetrics, attached: AttachedMetrics | undefined, now: number, opts: SeedOptions = {}): Promise<SeedResult> {
  const maxUsers = opts.maxUsers ?? 1_000_000;
  const pageSize = opts.pageSize ?? 1000;
  let after: string | undefined;
  const r: SeedResult = { users: 0, pending: 0, pendingBytes: 0, complete: true };
  for (;;) {
    const page = await store.users(after === undefined ? { limit: pageSize } : { after, limit: pageSize });
    if (page.length === 0) break;
    for (const user of page) {
      if (r.users >= maxUsers) {
        r.complete = false;
        break;
      }
      const s = await store.stats(user, now);
      r.users++;
      r.pending += s.pending;
      r.pendingBytes += s.pendingBytes;
      if (s.pending > 0 && s.oldestAgeMs !== null) attached?.oldest.noteStored(user, now - s.oldestAgeMs);
    }
    opts.onProgress?.(r.users);
    if (!r.complete || page.length < pageSize) break;
    after = page[page.length - 1];
  }
  metrics.pendingMessages.inc(r.pending);
  metrics.pendingBytes.inc(r.pendingBytes);
  return r;
}
