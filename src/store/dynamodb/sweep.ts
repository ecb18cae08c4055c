/**
 * The sweeper (layout 2). Messages and dedupe entries carry a native TTL, which deletes
 * them for free but late, and tells nobody; the sweeper keeps the quota counters right
 * and reports expired messages, without any per-message index entry.
 *
 * A pass walks the users index (one small entry per mailbox, written once when the
 * mailbox was created) and reads the meta items it lists, eventually consistent, in
 * batches of 100: that costs half a read unit per mailbox per pass, whatever the traffic.
 * Only mailboxes that still count messages (`cnt > 0`) and whose earliest known expiry
 * (`fx`) has passed are visited: a strongly consistent read of the meta item and of its
 * live range, then one conditional update (conditioned on `ver`) that lowers the
 * counters by what expired, raises `floor` over the prefix that is now all expired,
 * acked or closed, and records the next expiry. Expired messages in that prefix are
 * deleted afterwards (they are below the floor: invisible either way); one that expired
 * behind a live message becomes a tombstone, so no reader ever waits on it, written in
 * one TransactWriteItems with that update (sweepUser says why).
 *
 * The walk resumes where the previous call stopped, so a sweep bounded by `max` goes on
 * from the same mailbox.
 */
import type { DeviceId, Seq, UserId } from '../../core/ids.js';
import type { SweepOutcome } from '../contract.js';
import { decodeMessage, decodeMeta, encodeTombstone, seqRecord, ttlSeconds } from './codec.js';
import { itemKey, messageSk, META_SK, USERS_GPK } from './keys.js';
import { addSender, senderDecrements, stateUpdate } from './meta-writes.js';
import { StaleRead, type TableClient } from './queries.js';
import { isReleased } from './released.js';
import { gapsAfterRemoval } from '../rules.js';
import { contentionPause, withinBudget } from './retry.js';

const USERS_PER_PAGE = 100;

export interface SweepState {
  /** The last mailbox a pass finished, when a pass is under way. */
  after?: UserId;
}

export interface SweepHooks {
  graceSeconds: number;
  /** Deletes that failed are left for native TTL (below the floor, invisible) and reported. */
  onLeftBehind: (count: number, err: unknown) => void;
}

export async function sweep(t: TableClient, state: SweepState, now: number, max: number, hooks: SweepHooks): Promise<SweepOutcome> {
  const total: SweepOutcome = { expired: 0, expiredBytes: 0, cleaned: 0, more: false };
  for (;;) {
    const page = await t.queryIndex(USERS_GPK, undefined, state.after, USERS_PER_PAGE);
    const users = page.map((i) => i.pk!.S!);
    if (users.length === 0) {
      state.after = undefined;
      return total;
    }
    // A filter only: a stale meta item at worst sends us to a mailbox with nothing to do.
    const metas = await t.getKeys(
      users.map((u) => itemKey(u, META_SK)),
      false,
      true,
    );
    for (const user of users) {
      const item = metas.get(user);
      const meta = item ? decodeMeta(item) : undefined;
      if (meta && meta.count > 0 && (meta.firstExpiry === undefined || meta.firstExpiry <= now)) {
        const r = await sweepUser(t, user, now, max - total.expired, hooks);
        total.expired += r.expired;
        total.expiredBytes += r.expiredBytes;
        if (r.more || total.expired >= max) {
          total.more = true;
          if (!r.more) state.after = user;
          return total;
        }
      }
      state.after = user;
    }
    if (users.length < USERS_PER_PAGE) {
      state.after = undefined;
      return total;
    }
  }
}

interface UserSweep {
  expired: number;
  expiredBytes: number;
  more: boolean;
}

/**
 * Tombstones one visit writes at most: they share a TransactWriteItems with the meta
 * update (100 actions at most); what expired beyond them is left for the next visit.
 */
export const MAX_TOMBSTONES_PER_VISIT = 99;

/**
 * One mailbox: read, count what expired, commit. A message that expired behind a live one
 * becomes a tombstone in the same TransactWriteItems as the meta update that counts it,
 * never before it. Written first (as it once was), an ack computed from a read made
 * before the tombstone could land between the two writes: it counted the message (its
 * condition covers only the meta item, which the tombstone leaves alone), its `ver` bump
 * failed the sweeper's update, and the retry, finding its own tombstone, counted the
 * message again; so did a second node's sweep of the same mailbox. Committed together,
 * every tombstone in the range is one somebody already counted (this transaction, or a
 * reader that closed a hole), an ack that read the message before it sees the gap notice
 * the same write records (meta-writes.ts ackUpdate, part 6) and computes again, and a
 * sweep whose condition failed wrote nothing it could count twice.
 * test/store/dynamodb/sweep-ack.test.ts holds the sweeper's write while an ack or another
 * sweep lands.
 */
async function sweepUser(t: TableClient, user: UserId, now: number, budget: number, hooks: SweepHooks): Promise<UserSweep> {
  const startedAt = Date.now();
  for (let attempt = 0; ; attempt++) {
    const meta = await t.getMeta(user);
    if (!meta) return { expired: 0, expiredBytes: 0, more: false };
    const victims: Array<{ seq: Seq; bytes: number; cb: number | undefined; from: UserId | undefined; toDevice: DeviceId | undefined }> = [];
    let tombstones = 0;
    let prefix = meta.floor;
    let open = true;
    let expected = meta.floor + 1;
    let nextExpiry: number | undefined;
    let more = false;
    if (meta.lastSeq > meta.floor) {
      await t.queryRange(user, messageSk(meta.floor + 1), messageSk(meta.lastSeq), 1000, (items) => {
        for (const item of items) {
          const rec = seqRecord(item);
          if (rec.seq !== expected) open = false; // a hole: the floor stops before it
          expected = rec.seq + 1;
          if (rec.tomb) {
            // Counted already: by the sweep that wrote it, in the same write, or by the reader that closed a hole.
            if (open) prefix = rec.seq;
            continue;
          }
          const m = decodeMessage(item);
          if (isReleased(meta, m.seq, m.toDevice)) {
            if (open) prefix = m.seq;
            continue;
          }
          if (m.expiresAt <= now) {
            if (victims.length < budget && (open || tombstones < MAX_TOMBSTONES_PER_VISIT)) {
              victims.push({ seq: m.seq, bytes: m.bytes, cb: rec.cb, from: m.from, toDevice: m.toDevice });
              if (open) prefix = m.seq;
              else tombstones++;
              continue;
            }
            more = true;
          }
          open = false;
          nextExpiry = nextExpiry === undefined ? m.expiresAt : Math.min(nextExpiry, m.expiresAt);
        }
        return true;
      });
    }
    if (victims.length === 0 && nextExpiry === meta.firstExpiry && prefix === meta.floor) return { expired: 0, expiredBytes: 0, more };
    const bytes = victims.reduce((a, v) => a + v.bytes, 0);
    const bySender = new Map<UserId, { count: number; bytes: number }>();
    for (const v of victims) addSender(bySender, v.from, v.bytes);
    const update = stateUpdate({
      expectedVer: meta.ver,
      floor: prefix,
      countDelta: -victims.length,
      bytesDelta: -bytes,
      firstExpiry: nextExpiry ?? (more ? now : null),
      senders: senderDecrements(meta, bySender),
      // Devices still below an expired message never saw it: their gap notices, in this same update.
      setGaps: gapsAfterRemoval(meta.devices, victims, 'expired'),
    });
    // Expired behind a live message: a tombstone, so readers pass it without waiting; written with the update that counts it.
    const tombs = victims.filter((v) => v.seq > prefix).map((v) => encodeTombstone(user, v.seq, ttlSeconds(now, hooks.graceSeconds), v.bytes, v.cb));
    try {
      if (tombs.length === 0) await t.updateMeta(user, update);
      else await t.updateMetaWith(user, update, tombs);
    } catch (err) {
      if (!(err instanceof StaleRead) || !withinBudget(startedAt, t.retry)) throw err;
      t.capacity.retries++;
      await contentionPause(attempt, t.retry);
      continue;
    }
    const below = victims.filter((v) => v.seq <= prefix).map((v) => messageSk(v.seq));
    try {
      await t.deleteMany(user, below);
    } catch (err) {
      hooks.onLeftBehind(below.length, err);
    }
    return { expired: victims.length, expiredBytes: bytes, more };
  }
}
