/**
 * The write-ahead log's in-memory side: for every user with changes not yet applied to
 * LMDB, the authoritative meta (seq, counts, cursors) and the messages, deletes and
 * dedupe entries that exist only in the log so far. A user's state leaves memory once
 * an apply has made LMDB say the same thing.
 *
 * A user's messages are, in seq order: first the ones LMDB holds (minus `tombs`, the
 * ones deleted since the last apply), then `resident`. That split is exact because an
 * apply covers every record up to an lsn and seqs grow with lsn within a user, so every
 * message LMDB holds and memory does not is older than every resident one. While an
 * apply is in flight its messages are in both places (flag `applying`); readers take
 * them from memory until the apply has committed and they are dropped from it. A message
 * replayed from the log may also be in LMDB already (flag `replayed`: an apply that
 * crashed between its chunks wrote it, index.ts), above LMDB's `applied` mark; readers
 * take it from memory too, and deleting it leaves a tomb, so no copy is left behind.
 */
import type { MessageId, Seq } from '../../core/ids.js';
import type { UserId } from '../../core/ids.js';
import type { DedupeValue, MessageValue, MetaValue, SenderValue } from './keys.js';

export interface ResidentMessage {
  seq: Seq;
  v: MessageValue;
  /** Captured by the apply in flight: LMDB may already hold it. */
  applying: boolean;
  /**
   * Replayed from the log at open or recovery: a chunk of an apply that did not finish may
   * have written it to LMDB, so a delete must leave a tomb as for `applying`.
   */
  replayed: boolean;
}

export interface UserState {
  meta: MetaValue;
  /** Messages not yet dropped from memory, ascending seq. */
  resident: ResidentMessage[];
  /** Seqs deleted here that LMDB may still hold; the next apply deletes them. */
  tombs: Set<Seq>;
  /** Dedupe entries LMDB does not hold yet. */
  dedupe: Map<MessageId, DedupeValue>;
  /**
   * Sender counters (fair quotas) changed since LMDB last held them; a zero count means
   * the entry goes. Values are replaced, never mutated, so an apply can tell whether
   * the one it wrote is still the current one.
   */
  senders: Map<UserId, SenderValue>;
  /** The last log record that changed this user. */
  lsn: number;
}

export function newState(meta: MetaValue): UserState {
  return { meta, resident: [], tombs: new Set(), dedupe: new Map(), senders: new Map(), lsn: 0 };
}

/** A copy an apply can write later, whatever happens to the live meta meanwhile. */
export function copyMeta(m: MetaValue): MetaValue {
  const devices: MetaValue['devices'] = {};
  // A gap notice is replaced, never mutated: sharing it is safe.
  for (const [d, v] of Object.entries(m.devices))
    devices[d] = v.gap ? { cursor: v.cursor, registeredAt: v.registeredAt, gap: v.gap } : { cursor: v.cursor, registeredAt: v.registeredAt };
  return { epoch: m.epoch, lastSeq: m.lastSeq, count: m.count, bytes: m.bytes, devices };
}

/** The seq below which LMDB is the home of this user's messages. */
export function firstResidentSeq(s: UserState | undefined): Seq {
  return s && s.resident.length > 0 ? s.resident[0]!.seq : Number.MAX_SAFE_INTEGER;
}

/** Index of the first resident message with seq > after (binary search). */
export function residentAfter(s: UserState, after: Seq): number {
  let lo = 0;
  let hi = s.resident.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (s.resident[mid]!.seq <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
