/**
 * Holes: seqs that a reservation handed out but whose message is not (yet) there.
 *
 * A send reserves its seq on the meta item first and writes the message after, with a
 * conditional put. In between, and for good if the writer dies, the seq is a hole. A
 * reader (or an ack, a removal, the sweeper) must never move past a hole whose message
 * may still appear: a live session reading "after my last seq" would skip it forever.
 *
 * So a hole is waited for during a lease: its age is at least the time since this node
 * first saw it, and at least the time since the mailbox's latest reservation (`rat` on
 * the meta item: every reservation up to `last` happened no later). Past the lease the
 * hole is closed with a tombstone (a conditional put: it fails if the message arrived
 * meanwhile). A writer whose put then finds the tombstone takes a new seq, so nothing it
 * was told is stored is ever skipped. Clocks only decide when to stop waiting, never
 * what is correct.
 *
 * The reservation counted the hole's message in `cnt`/`bytes`; the closer gives that
 * back exactly: every item carries `cb`, the bytes reserved for all seqs up to its own,
 * and the meta item `tb`, the total, so a run of holes s..t held cb(t) - cb(s-1) bytes.
 */
import type { Seq, UserId } from '../../core/ids.js';
import { encodeTombstone, seqRecord, ttlSeconds, type MetaValue, type SeqRecord } from './codec.js';
import { messageSk } from './keys.js';
import { refundUpdate } from './meta-writes.js';
import type { TableClient } from './queries.js';

/** How long tombstones stay: far longer than any write can be in flight. */
const TOMBSTONE_KEEP_MS = 86_400_000;
const MAX_TRACKED = 100_000;

export class Holes {
  private readonly firstSeen = new Map<string, number>();
  /** Holes this node closed (for tests and capacity reports). */
  closed = 0;

  constructor(
    private readonly t: TableClient,
    readonly leaseMs: number,
    private readonly graceSeconds: number,
  ) {}

  /**
   * `missing`: seqs in ascending order that a strongly consistent read of their range did
   * not find; `known`: what that read found, by seq. Closes, in order, every hole older
   * than the lease up to the first younger one. Returns the first seq that may still
   * hold a message (a hole younger than the lease, or one whose message arrived as we
   * closed it: read again), or undefined when every hole is closed.
   */
  async settle(user: UserId, meta: MetaValue, missing: readonly Seq[], known: ReadonlyMap<Seq, SeqRecord>): Promise<Seq | undefined> {
    if (missing.length === 0) return undefined;
    const now = Date.now();
    if (this.firstSeen.size > MAX_TRACKED) this.firstSeen.clear();
    let old = 0;
    for (const seq of missing) {
      const key = `${user}\0${seq}`;
      const first = this.firstSeen.get(key) ?? now;
      if (!this.firstSeen.has(key)) this.firstSeen.set(key, now);
      if (now - Math.min(first, meta.reservedAt) < this.leaseMs) break;
      old++;
    }
    let blocked: Seq | undefined = missing[old];
    let count = 0;
    let bytes = 0;
    for (const [s, e] of runs(missing.slice(0, old))) {
      const after = e === meta.lastSeq && meta.totalBytes > 0 ? meta.totalBytes : await this.cumulativeBefore(user, e + 1, known);
      const before = s === 1 ? 0 : await this.cumulativeAt(user, s - 1, known);
      const runBytes = after !== undefined && before !== undefined && after >= before ? after - before : undefined;
      const ttl = ttlSeconds(now + TOMBSTONE_KEEP_MS, this.graceSeconds);
      for (let seq = s; seq <= e && blocked !== seq; seq++) {
        const last = seq === e;
        const item = encodeTombstone(user, seq, ttl, last ? (runBytes ?? 0) : 0, last ? after : undefined);
        if (await this.t.putIf(item)) {
          count++;
          if (last && runBytes !== undefined) bytes += runBytes;
          this.firstSeen.delete(`${user}\0${seq}`);
        } else {
          blocked = seq; // the message arrived, or another reader closed it: read again from here
        }
      }
      if (blocked !== undefined && blocked <= e) break;
    }
    if (count > 0) {
      this.closed += count;
      await this.t.updateMeta(user, refundUpdate(count, bytes));
    }
    return blocked;
  }

  /** cb of the seq before `next`, from `next` (what was read, else the item itself). */
  private async cumulativeBefore(user: UserId, next: Seq, known: ReadonlyMap<Seq, SeqRecord>): Promise<number | undefined> {
    const rec = known.get(next);
    if (rec) return cbBefore(rec);
    const item = await this.t.getItem(user, messageSk(next));
    return item ? cbBefore(seqRecord(item)) : undefined;
  }

  /** cb of `seq`: from what was read, else from the item itself (undefined when unknown). */
  private async cumulativeAt(user: UserId, seq: Seq, known: ReadonlyMap<Seq, SeqRecord>): Promise<number | undefined> {
    const rec = known.get(seq);
    if (rec) return rec.cb;
    const item = await this.t.getItem(user, messageSk(seq));
    return item ? seqRecord(item).cb : undefined;
  }
}

/** cb of the seq before `next`, from `next` itself. */
function cbBefore(next: SeqRecord | undefined): number | undefined {
  return next?.cb !== undefined ? next.cb - next.bytes : undefined;
}

/** Consecutive runs [first, last] of ascending seqs. */
function runs(seqs: readonly Seq[]): Array<[Seq, Seq]> {
  const out: Array<[Seq, Seq]> = [];
  for (const seq of seqs) {
    const cur = out[out.length - 1];
    if (cur && cur[1] === seq - 1) cur[1] = seq;
    else out.push([seq, seq]);
  }
  return out;
}
