/**
 * One page of a device's view, strongly consistent, never past a seq whose message may
 * still appear (holes.ts).
 *
 * The metadata item sorts right after the messages, so a single Query, newest first,
 * from the meta item down to `afterSeq + 1` returns the meta item (cursor, floor, last
 * seq) and the messages a caught-up device is waiting for: one request, one read unit
 * for a small page. When the backlog is longer than that Query took (or the page), the
 * page is read oldest first from the right place (a second Query).
 */
import { deviceNotRegistered } from '../../core/errors.js';
import type { Seq } from '../../core/ids.js';
import type { ReadPage, StoredMessage } from '../../core/types.js';
import type { ReadRequest } from '../contract.js';
import { hasDevice } from '../rules.js';
import { decodeMessage, decodeMeta, seqRecord, type Item, type MetaValue, type SeqRecord } from './codec.js';
import type { Holes } from './holes.js';
import { messageSk, META_SK } from './keys.js';
import type { TableClient } from './queries.js';
import { isReleased } from './released.js';

/** Holes settled per page; the page stops before the first one beyond. */
const MAX_HOLES = 99;
/** Items released for other devices (acked, or for a removed device) a page passes before it returns short. */
const MAX_RELEASED = 99;

export interface ReadResult {
  page: ReadPage;
  meta: MetaValue;
  /** Every seq in (start, nextAfter] is known: a message, a tombstone or released (no hole left). */
  start: Seq;
  /** What the read found in that range, by seq (a seq missing here is a hole it closed). */
  known: ReadonlyMap<Seq, SeqRecord>;
}

/**
 * One attempt at a page; undefined when a hole must be waited for (read again). With
 * `allowShort`, a page that has messages before the hole ends there instead (`more`).
 * `lastHint`: the last seq this node saw for the mailbox, to size the first Query (the meta
 * item and the whole backlog when it fits in the page; else the meta item and one message,
 * then the page oldest first).
 */
export async function readOnce(t: TableClient, holes: Holes, req: ReadRequest, scanBudget: number, lastHint?: Seq, allowShort = false): Promise<ReadResult | undefined> {
  const backlog = lastHint === undefined ? Infinity : lastHint - req.afterSeq;
  const first = backlog <= req.limit ? Math.max(2, backlog + 1) : 2;
  const top = await t.queryPage(req.user, messageSk(req.afterSeq + 1), META_SK, first, true);
  const metaItem = top.items[0];
  if (!metaItem || metaItem.sk?.S !== META_SK) throw deviceNotRegistered(req.user, req.device);
  const meta = decodeMeta(metaItem);
  if (!hasDevice(meta.devices, req.device)) throw deviceNotRegistered(req.user, req.device);
  const cursor = meta.devices[req.device]!.cursor;
  const after = Math.max(req.afterSeq, cursor);
  const start = Math.max(after, meta.floor);
  // The device's gap notice rides in the meta item this Query read anyway: no extra request.
  const gap = meta.devices[req.device]!.gap;
  const pageOf = (messages: StoredMessage[], nextAfter: Seq, more: boolean, expired: Seq[] = []): ReadPage => {
    const p: ReadPage = { epoch: meta.epoch, messages, nextAfter, more, lastSeq: meta.lastSeq, cursor };
    if (gap) p.gap = gap;
    if (expired.length > 0) p.expired = expired;
    return p;
  };
  if (start >= meta.lastSeq) return { page: pageOf([], after, false), meta, start, known: new Map() };

  const page = new PageBuilder(req, meta, start, scanBudget);
  const ascending = top.items.slice(1).reverse();
  const oldest = ascending[0] ? seqRecord(ascending[0]).seq : Infinity;
  if (!top.more || oldest <= start + 1) {
    page.feed(ascending);
  } else {
    // The backlog is longer than one page: read it oldest first from where the device is.
    await t.queryRange(req.user, messageSk(start + 1), messageSk(meta.lastSeq), Math.min(req.limit + 1, scanBudget + 1), (items) => page.feed(items));
  }
  const result = page.finish();
  const blocked = await holes.settle(req.user, meta, result.missing, page.known);
  if (blocked !== undefined) {
    // A seq whose message may still be written: never pass it. Normally it is written
    // within a round trip, so read again (undefined); after a few tries hand out what
    // comes before it (a stream of sends always has some in flight, and waiting for a
    // window with none could starve the reader).
    const before = result.messages.filter((m) => m.seq < blocked);
    if (before.length === 0 || !allowShort) return undefined;
    return { page: pageOf(before, blocked - 1, true, page.expiredUpTo(blocked - 1)), meta, start, known: page.known };
  }
  return { page: pageOf(result.messages, result.nextAfter, result.more, page.expiredUpTo(result.nextAfter)), meta, start, known: page.known };
}

class PageBuilder {
  readonly known = new Map<Seq, SeqRecord>();
  private readonly messages: StoredMessage[] = [];
  /** Seqs for this device passed because they had expired (still stored: the sweeper has not been yet). */
  private readonly expired: Seq[] = [];
  private readonly missing: Seq[] = [];
  private expected: Seq;
  private nextAfter: Seq;
  private scanned = 0;
  private released = 0;
  private more = false;
  private stopAt: Seq | undefined;
  private stopped = false;

  constructor(
    private readonly req: ReadRequest,
    private readonly meta: MetaValue,
    start: Seq,
    private readonly scanBudget: number,
  ) {
    this.expected = start + 1;
    this.nextAfter = Math.max(req.afterSeq, meta.devices[req.device]!.cursor);
  }

  /** Take items in ascending seq order; false once the page is complete. */
  feed(items: readonly Item[]): boolean {
    for (const item of items) {
      if (this.stopped) return false;
      const rec = seqRecord(item);
      if (rec.seq < this.expected) continue;
      if (rec.seq > this.meta.lastSeq) {
        this.stopped = true; // reserved after the meta item was read: the next read gets it
        return false;
      }
      if (this.messages.length >= this.req.limit || this.scanned >= this.scanBudget) {
        this.more = true;
        this.stopped = true;
        return false;
      }
      if (!this.noteHoles(rec.seq)) return false;
      this.expected = rec.seq + 1;
      this.known.set(rec.seq, rec);
      this.scanned++;
      if (rec.tomb) {
        this.nextAfter = rec.seq;
        continue;
      }
      const m = decodeMessage(item);
      if (isReleased(this.meta, m.seq, m.toDevice) && ++this.released > MAX_RELEASED) {
        this.stop(m.seq);
        return false;
      }
      this.nextAfter = m.seq;
      if (m.toDevice !== undefined && m.toDevice !== this.req.device) continue;
      if (m.expiresAt <= this.req.now) {
        this.expired.push(m.seq); // above the cursor and the floor, for this device: unseen
        continue;
      }
      this.messages.push(m);
    }
    return !this.stopped;
  }

  /** Seqs between the last item seen and `upTo` (exclusive) are holes; false when there are too many. */
  private noteHoles(upTo: Seq): boolean {
    for (let s = this.expected; s < upTo; s++) {
      if (this.missing.length === MAX_HOLES) {
        this.stop(s);
        return false;
      }
      this.missing.push(s);
    }
    return true;
  }

  private stop(at: Seq): void {
    this.stopAt = at;
    this.stopped = true;
    this.more = true;
  }

  /** The expired messages this page passed, up to where it ends. */
  expiredUpTo(nextAfter: Seq): Seq[] {
    return this.expired.filter((seq) => seq <= nextAfter);
  }

  finish(): { messages: StoredMessage[]; nextAfter: Seq; more: boolean; missing: Seq[] } {
    if (!this.more) this.noteHoles(this.meta.lastSeq + 1);
    if (this.stopAt !== undefined) {
      return { messages: this.messages.filter((m) => m.seq < this.stopAt!), nextAfter: this.stopAt - 1, more: true, missing: this.missing };
    }
    return { messages: this.messages, nextAfter: this.more ? this.nextAfter : this.meta.lastSeq, more: this.more, missing: this.missing };
  }
}
