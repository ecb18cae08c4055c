/**
 * Export and import of one mailbox (layout 2).
 *
 * Export reads the meta item and then the live range (floor, last] page by page, strongly
 * consistent, leaving out tombstones and released messages (expired ones not swept yet
 * stay: the target's sweeper removes them and leaves the same gap notices). A seq still
 * being written (a hole) is not waited for: an export is a copy of what was stored when
 * it read, and the message of a send in flight meanwhile is not in it.
 *
 * Import writes into an empty mailbox (no meta item, or one that never reserved a seq and
 * has no device) without a transaction, so the meta item is written LAST: until then no
 * reader sees the mailbox (no device is registered) and nothing counts it. First every
 * message and its dedupe entry, and a tombstone for every seq between the floor and the
 * last seq that holds no imported message (in layout 2 a missing seq is a hole readers
 * would wait for; these were acked or expired before the export), each a put conditioned
 * on nothing being there. Then the meta item, conditioned on the mailbox still being
 * empty: counters, sender shares, floor (just below the first imported message), the
 * cumulative bytes (`tb`, and `cb` on every item, so hole arithmetic stays exact) and the
 * earliest expiry. If anything fails, what was written is deleted again (best effort:
 * what a failed delete leaves is removed by native TTL) and the mailbox stays empty.
 */
import { mailboxNotEmpty, PoboxError } from '../../core/errors.js';
import type { Seq, UserId } from '../../core/ids.js';
import type { StoredMessage } from '../../core/types.js';
import type { ExportPage, MailboxSnapshot, RestoreOutcome } from '../contract.js';
import type { DeviceMap } from '../rules.js';
import { decodeMessage, encodeDedupe, encodeMessage, encodeMeta, encodeTombstone, seqRecord, ttlSeconds, type Item, type MetaValue } from './codec.js';
import { messageSk } from './keys.js';
import type { TableClient } from './queries.js';
import { isReleased } from './released.js';

/** Puts of one import in flight at once. */
const RESTORE_CONCURRENCY = 16;

/** A mailbox an import may write into. */
function isEmptyMailbox(meta: MetaValue | undefined): boolean {
  return !meta || (meta.lastSeq === 0 && Object.keys(meta.devices).length === 0);
}

export async function exportPage(t: TableClient, user: UserId, afterSeq: Seq, upTo: Seq, limit: number): Promise<ExportPage> {
  const meta = await t.getMeta(user);
  if (!meta) return { messages: [], nextAfter: afterSeq, more: false };
  const lo = Math.max(afterSeq, meta.floor);
  const hi = Math.min(upTo, meta.lastSeq);
  const messages: StoredMessage[] = [];
  let nextAfter = Math.max(afterSeq, hi);
  let more = false;
  if (hi > lo) {
    let last = lo;
    await t.queryRange(user, messageSk(lo + 1), messageSk(hi), Math.min(limit + 1, 1000), (items) => {
      for (const item of items) {
        if (messages.length >= limit) {
          more = true;
          nextAfter = last;
          return false;
        }
        const rec = seqRecord(item);
        last = rec.seq;
        if (rec.tomb) continue;
        const m = decodeMessage(item);
        if (isReleased(meta, m.seq, m.toDevice)) continue;
        messages.push(m);
      }
      return true;
    });
  }
  return { messages, nextAfter, more };
}

export async function restore(t: TableClient, snap: MailboxSnapshot, graceSeconds: number): Promise<RestoreOutcome> {
  const { user } = snap;
  if (!isEmptyMailbox(await t.getMeta(user))) throw mailboxNotEmpty(user);
  const floor = snap.messages.length > 0 ? snap.messages[0]!.seq - 1 : snap.lastSeq;
  const tombTtl = ttlSeconds(Date.now() + 86_400_000, graceSeconds);
  const items: Item[] = [];
  const bySeq = new Map<Seq, StoredMessage>(snap.messages.map((m) => [m.seq, m]));
  const senders: MetaValue['senders'] = {};
  let cumulative = 0;
  let firstExpiry: number | undefined;
  for (let seq = floor + 1; seq <= snap.lastSeq; seq++) {
    const m = bySeq.get(seq);
    if (!m) {
      items.push(encodeTombstone(user, seq, tombTtl, 0, cumulative));
      continue;
    }
    cumulative += m.bytes;
    items.push(encodeDedupe(user, { id: m.id, seq, expiresAt: m.expiresAt }, graceSeconds));
    items.push(encodeMessage({ ...m, to: user }, graceSeconds, cumulative));
    const held = (senders[m.from] ??= { count: 0, bytes: 0 });
    held.count++;
    held.bytes += m.bytes;
    firstExpiry = Math.min(firstExpiry ?? m.expiresAt, m.expiresAt);
  }
  const devices: DeviceMap = {};
  for (const d of snap.devices) devices[d.device] = d.gap ? { cursor: d.cursor, registeredAt: d.registeredAt, gap: d.gap } : { cursor: d.cursor, registeredAt: d.registeredAt };
  const meta: MetaValue = {
    epoch: snap.epoch,
    lastSeq: snap.lastSeq,
    count: snap.messages.length,
    bytes: cumulative,
    floor,
    devices,
    leaving: [],
    ver: 1,
    totalBytes: cumulative,
    reservedAt: 0,
    senders,
    ...(firstExpiry !== undefined ? { firstExpiry } : {}),
  };

  const written: string[] = [];
  let conflict = false;
  const queue = [...items];
  const worker = async (): Promise<void> => {
    for (let item = queue.shift(); item && !conflict; item = queue.shift()) {
      if (await t.putIf(item)) written.push(item.sk!.S!);
      else conflict = true;
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(RESTORE_CONCURRENCY, queue.length) }, worker));
    // The commit point: the meta item, only while the mailbox is still empty.
    if (!conflict) {
      conflict = !(await t.putIf(encodeMeta(user, meta), 'attribute_not_exists(pk) OR (#l = :zero AND size(#d) = :zero)', { ':zero': { N: '0' } }, { '#l': 'last', '#d': 'devs' }));
    }
  } catch (err) {
    await undo(t, user, written);
    throw err instanceof PoboxError ? err : new PoboxError('UNAVAILABLE', `import of ${user} failed: ${(err as Error).message}`, { cause: err });
  }
  if (conflict) {
    await undo(t, user, written);
    throw mailboxNotEmpty(user);
  }
  return { devices: snap.devices.length, messages: snap.messages.length, bytes: cumulative };
}

/** Delete what a failed import wrote; a delete that fails too is left to native TTL. */
async function undo(t: TableClient, user: UserId, sks: string[]): Promise<void> {
  await t.deleteMany(user, sks).catch(() => undefined);
}
