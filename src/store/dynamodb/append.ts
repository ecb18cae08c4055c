/**
 * Appending to one user's mailbox without a transaction (layout 2).
 *
 * 1. Reserve the seqs: one conditional UpdateItem of the meta item ADDs the number of
 *    messages to `last` (and their count and bytes to the quota counters), conditioned on
 *    the quota leaving room and on addressed devices being registered and not leaving.
 *    DynamoDB returns the new `last`; nothing is read first.
 * 2. Per message, the dedupe entry (a put conditioned on no live entry for the id), then
 *    the message (a put conditioned on nothing being at its seq).
 *
 * Between 1 and 2 the seqs are holes; readers wait for them for a lease and then close
 * them with tombstones (holes.ts). A message whose put finds a tombstone takes a new seq
 * (step 1 again, for that message) and points its dedupe entry there. The dedupe entry
 * goes first so that a resend arriving meanwhile finds it: it then checks the message at
 * that seq (present: a duplicate; a tombstone: the original died, take over the id).
 *
 * A resend detected at step 2 gives its seq back when it was the last one reserved (so
 * seqs stay dense), else closes it with a tombstone; either way the counters are given
 * back. A refusal (quota, unknown device) is final only once the id is known not to be a
 * duplicate, which would win. A lost response is retried as the same request: an
 * applied reservation then leaves holes that readers close and refund exactly, and an
 * applied put is recognised by reading the item back.
 */
import { PoboxError, deviceNotRegistered, mailboxFull, senderQuotaExceeded } from '../../core/errors.js';
import type { MessageId, Seq, UserId } from '../../core/ids.js';
import type { AppendItem, AppendLimits, AppendOutcome } from '../contract.js';
import { hasDevice } from '../rules.js';
import { newEpoch } from '../epoch.js';
import { decodeDedupe, encodeDedupe, encodeMessage, encodeTombstone, itemSize, MAX_ITEM_BYTES, seqRecord, ttlSeconds, type MetaValue } from './codec.js';
import type { Holes } from './holes.js';
import { dedupeSk, messageSk } from './keys.js';
import { giveBackUpdate, lowerFirstExpiryUpdate, refundUpdate, reserveUpdate, type Reservation } from './meta-writes.js';
import { StaleRead, type TableClient } from './queries.js';
import { contentionPause, withinBudget } from './retry.js';

export interface AppendSettings {
  ttlGraceSeconds: number;
  holes: Holes;
  /** Told the meta item after each reservation (the store's cache for acks). */
  remember: (user: UserId, meta: MetaValue) => void;
  /** Test hook: called after a reservation, before any message is written. */
  afterReserve?: (user: UserId, seqs: Seq[]) => Promise<void>;
}

/** Messages per reservation. */
const MAX_PER_RESERVATION = 100;
/**
 * Distinct senders, and distinct target devices, per reservation: each adds its own
 * counters and conditions to the one UpdateItem, whose condition expression DynamoDB
 * caps at 4 KB (about 100 bytes per sender: 50 senders in one batch overflowed it).
 */
const MAX_KEYS_PER_RESERVATION = 16;

/** Consecutive runs of `entries` (order kept) small enough for one reservation. */
function reservationChunks(entries: Entry[]): Entry[][] {
  const chunks: Entry[][] = [];
  let chunk: Entry[] = [];
  let senders = new Set<UserId>();
  let devices = new Set<string>();
  for (const e of entries) {
    const newSender = !senders.has(e.item.from);
    const newDevice = e.item.toDevice !== undefined && !devices.has(e.item.toDevice);
    if (chunk.length === MAX_PER_RESERVATION || (newSender && senders.size === MAX_KEYS_PER_RESERVATION) || (newDevice && devices.size === MAX_KEYS_PER_RESERVATION)) {
      chunks.push(chunk);
      chunk = [];
      senders = new Set();
      devices = new Set();
    }
    chunk.push(e);
    senders.add(e.item.from);
    if (e.item.toDevice !== undefined) devices.add(e.item.toDevice);
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}
/** The largest numbers an item can carry, for the size check before the seq is known. */
const SIZE_PROBE_SEQ = 9_007_199_254_740_991;

export interface Entry {
  index: number;
  item: AppendItem;
}

export function emptyMeta(): MetaValue {
  return { epoch: newEpoch(), lastSeq: 0, count: 0, bytes: 0, floor: 0, devices: {}, leaving: [], ver: 0, totalBytes: 0, reservedAt: 0, senders: {} };
}

/** Append `entries` (all for `user`, in order), writing each outcome into `out`. */
export async function appendForUser(t: TableClient, s: AppendSettings, user: UserId, entries: Entry[], limits: AppendLimits, out: AppendOutcome[]): Promise<void> {
  for (const chunk of reservationChunks(entries)) {
    try {
      await appendChunk(t, s, user, chunk, limits, out);
    } catch (err) {
      const e = err instanceof PoboxError ? err : new PoboxError('UNAVAILABLE', `could not store the message for ${user}: ${(err as Error).message}`, { cause: err });
      for (const p of chunk) if (out[p.index] === undefined) out[p.index] = { ok: false, error: e };
    }
  }
}

async function appendChunk(t: TableClient, s: AppendSettings, user: UserId, chunk: Entry[], limits: AppendLimits, out: AppendOutcome[]): Promise<void> {
  // The same id twice in one chunk: the later ones answer like the first.
  const first = new Map<MessageId, Entry>();
  const repeats: Array<{ entry: Entry; of: Entry }> = [];
  const refused = new Map<number, PoboxError>();
  let candidates: Entry[] = [];
  for (const e of chunk) {
    const of = first.get(e.item.id);
    if (of) {
      repeats.push({ entry: e, of });
      continue;
    }
    first.set(e.item.id, e);
    const size = itemSize(encodeMessage({ ...e.item, seq: SIZE_PROBE_SEQ }, s.ttlGraceSeconds, SIZE_PROBE_SEQ));
    if (size > MAX_ITEM_BYTES) {
      refused.set(e.index, new PoboxError('PAYLOAD_TOO_LARGE', `message item would be ${size} bytes; DynamoDB allows ${MAX_ITEM_BYTES}`, { field: 'body' }));
    } else if (e.item.bytes > limits.maxMailboxBytes || limits.maxMailboxMessages < 1) {
      refused.set(e.index, mailboxFull(user));
    } else {
      candidates.push(e);
    }
  }

  // Reserve: optimistically all of them; if a condition fails, read the meta item and decide one by one.
  let meta: MetaValue | undefined;
  const startedAt = Date.now();
  for (let attempt = 0; candidates.length > 0; attempt++) {
    try {
      meta = await reserve(t, user, candidates, limits);
      break;
    } catch (err) {
      if (!(err instanceof StaleRead) || !withinBudget(startedAt, t.retry)) throw err;
      if (attempt > 0) await contentionPause(attempt, t.retry);
      const decided = decide(user, await t.getMeta(user), candidates, limits);
      for (const [index, error] of decided.refused) refused.set(index, error);
      candidates = decided.accepted;
    }
  }

  const writes: Array<Promise<void>> = [];
  if (meta && candidates.length > 0) {
    s.remember(user, meta);
    // The reservation sets the sweeper's earliest expiry only if it had none: lower it for a shorter-lived message.
    const earliest = Math.min(...candidates.map((e) => e.item.expiresAt));
    if (meta.firstExpiry !== undefined && earliest < meta.firstExpiry) {
      await t.updateMeta(user, lowerFirstExpiryUpdate(earliest)).catch((err: unknown) => {
        if (!(err instanceof StaleRead)) throw err; // already lower
      });
    }
    const firstSeq = meta.lastSeq - candidates.length + 1;
    const seqs = candidates.map((_, i) => firstSeq + i);
    let cumulative = meta.totalBytes - candidates.reduce((a, e) => a + e.item.bytes, 0);
    const epoch = meta.epoch;
    if (s.afterReserve) await s.afterReserve(user, seqs);
    candidates.forEach((e, i) => {
      cumulative += e.item.bytes;
      const slot = { seq: seqs[i]!, cb: cumulative };
      writes.push(
        writeOne(t, s, user, e.item, slot, epoch, limits, meta!.lastSeq).then(
          (o) => void (out[e.index] = o),
          (err: unknown) => void (out[e.index] = { ok: false, error: unavailable(user, err) }),
        ),
      );
    });
  }
  // A refusal never shadows a duplicate: an id stored before answers with its seq.
  for (const [index, error] of refused) {
    const entry = chunk.find((e) => e.index === index)!;
    writes.push(
      existingSeq(t, s, user, entry.item).then(
        async (dup) => {
          out[index] = dup === undefined ? { ok: false, error } : { ok: true, seq: dup, duplicate: true, epoch: meta?.epoch ?? (await t.getMeta(user))?.epoch ?? '' };
        },
        (err: unknown) => void (out[index] = { ok: false, error: unavailable(user, err) }),
      ),
    );
  }
  await Promise.all(writes);
  for (const { entry, of } of repeats) {
    const o = out[of.index]!;
    out[entry.index] = o.ok ? { ...o, duplicate: true } : o;
  }
}

function unavailable(user: UserId, err: unknown): PoboxError {
  return err instanceof PoboxError ? err : new PoboxError('UNAVAILABLE', `could not store the message for ${user}: ${(err as Error).message}`, { cause: err });
}

/** One conditional UpdateItem reserving a seq for each entry; the meta item after it. StaleRead when a condition failed. */
async function reserve(t: TableClient, user: UserId, entries: Entry[], limits: AppendLimits): Promise<MetaValue> {
  const bytes = entries.reduce((a, e) => a + e.item.bytes, 0);
  // A mailbox not created yet has no counters to condition on: more than the quota alone is decided item by item.
  const senders = senderShares(entries, limits);
  const overShare = senders.some((sd) => (sd.maxCount !== undefined && sd.count > sd.maxCount) || (sd.maxBytes !== undefined && sd.bytes > sd.maxBytes));
  if (entries.length > limits.maxMailboxMessages || bytes > limits.maxMailboxBytes || overShare) throw new StaleRead('more than the quota in one reservation');
  const devices = entries.flatMap((e) => (e.item.toDevice === undefined ? [] : [e.item.toDevice]));
  return t.updateMeta(
    user,
    reserveUpdate({
      count: entries.length,
      bytes,
      maxCount: limits.maxMailboxMessages,
      maxBytes: limits.maxMailboxBytes,
      devices,
      epoch: newEpoch(),
      user,
      now: Date.now(),
      firstExpiry: Math.min(...entries.map((e) => e.item.expiresAt)),
      senders,
    }),
  );
}

/**
 * What each sender adds, and the share it may hold: checked only when every message of
 * that sender in the reservation is subject to it (an exempt one still counts).
 */
function senderShares(entries: Entry[], limits: AppendLimits): Reservation['senders'] {
  const by = new Map<UserId, Reservation['senders'][number]>();
  for (const { item } of entries) {
    const sd = by.get(item.from) ?? { from: item.from, count: 0, bytes: 0 };
    sd.count++;
    sd.bytes += item.bytes;
    by.set(item.from, sd);
  }
  if (limits.maxSenderMessages !== undefined) {
    for (const sd of by.values()) {
      if (entries.some((e) => e.item.from === sd.from && e.item.senderQuotaExempt)) continue;
      sd.maxCount = limits.maxSenderMessages;
      if (limits.maxSenderBytes !== undefined) sd.maxBytes = limits.maxSenderBytes;
    }
  }
  return [...by.values()];
}

/** Which entries fit, in order, given the meta item as it is now. */
function decide(user: UserId, meta: MetaValue | undefined, entries: Entry[], limits: AppendLimits): { accepted: Entry[]; refused: Map<number, PoboxError> } {
  let count = meta?.count ?? 0;
  let bytes = meta?.bytes ?? 0;
  const held = new Map<UserId, { count: number; bytes: number }>(Object.entries(meta?.senders ?? {}).map(([f, h]) => [f, { ...h }]));
  const accepted: Entry[] = [];
  const refused = new Map<number, PoboxError>();
  for (const e of entries) {
    const d = e.item.toDevice;
    const h = held.get(e.item.from) ?? { count: 0, bytes: 0 };
    const overShare =
      limits.maxSenderMessages !== undefined &&
      !e.item.senderQuotaExempt &&
      (h.count + 1 > limits.maxSenderMessages || h.bytes + e.item.bytes > (limits.maxSenderBytes ?? Infinity));
    if (d !== undefined && (!meta || !hasDevice(meta.devices, d) || meta.leaving.includes(d))) {
      refused.set(e.index, deviceNotRegistered(user, d, 'toDevice'));
    } else if (overShare) {
      refused.set(e.index, senderQuotaExceeded(user, e.item.from));
    } else if (count + 1 > limits.maxMailboxMessages || bytes + e.item.bytes > limits.maxMailboxBytes) {
      refused.set(e.index, mailboxFull(user));
    } else {
      accepted.push(e);
      count++;
      bytes += e.item.bytes;
      held.set(e.item.from, { count: h.count + 1, bytes: h.bytes + e.item.bytes });
    }
  }
  return { accepted, refused };
}

type Verdict = 'stored' | 'dead' | 'wait';

/** Is the message a dedupe entry points at stored (or already released), dead (a tombstone), or maybe still being written? */
async function verify(t: TableClient, s: AppendSettings, user: UserId, seq: Seq): Promise<Verdict> {
  const item = await t.getItem(user, messageSk(seq));
  if (item) return seqRecord(item).tomb ? 'dead' : 'stored';
  const meta = await t.getMeta(user);
  if (!meta || seq <= meta.floor) return 'stored'; // released (acked by all, purged or swept)
  return (await s.holes.settle(user, meta, [seq], new Map())) === undefined ? 'dead' : 'wait';
}

/** The seq an id is stored at, if a live dedupe entry says so and its message is stored. */
async function existingSeq(t: TableClient, s: AppendSettings, user: UserId, item: AppendItem): Promise<Seq | undefined> {
  const startedAt = Date.now();
  for (let attempt = 0; ; attempt++) {
    const it = await t.getItem(user, dedupeSk(item.id));
    if (!it) return undefined;
    const d = decodeDedupe(it);
    if (d.expiresAt <= item.sentAt) return undefined;
    const v = await verify(t, s, user, d.seq);
    if (v === 'stored') return d.seq;
    if (v === 'dead' || !withinBudget(startedAt, t.retry)) return undefined;
    await contentionPause(attempt, t.retry);
  }
}

interface Slot {
  seq: Seq;
  /** Cumulative reserved bytes through this seq. */
  cb: number;
}

/** Write one reserved message (dedupe entry, then message); its outcome. */
async function writeOne(
  t: TableClient,
  s: AppendSettings,
  user: UserId,
  item: AppendItem,
  reserved: Slot,
  epoch: string,
  limits: AppendLimits,
  lastReserved: Seq,
): Promise<AppendOutcome> {
  let slot = reserved;
  let last = lastReserved;
  let dedupeHeld = false;
  const startedAt = Date.now();
  for (let attempt = 0; ; attempt++) {
    if (attempt > 0) {
      if (!withinBudget(startedAt, t.retry)) throw new PoboxError('UNAVAILABLE', `mailbox of ${user} kept changing while storing ${item.id}; try again`);
      await contentionPause(attempt, t.retry);
    }
    if (!dedupeHeld) {
      const claim = await claimId(t, s, user, item, slot.seq);
      if (claim.kind === 'wait') continue;
      if (claim.kind === 'duplicate') {
        await giveBack(t, user, slot, item, last, s.ttlGraceSeconds);
        return { ok: true, seq: claim.seq, duplicate: true, epoch };
      }
      dedupeHeld = true;
    }
    if (await t.putIf(encodeMessage({ ...item, seq: slot.seq }, s.ttlGraceSeconds, slot.cb))) return { ok: true, seq: slot.seq, duplicate: false, epoch };
    const there = await t.getItem(user, messageSk(slot.seq));
    if (there && !seqRecord(there).tomb && there.id?.S === item.id) return { ok: true, seq: slot.seq, duplicate: false, epoch }; // our put, answered late
    // A reader closed our seq (we were slower than the lease): take a new one, counted again.
    let meta: MetaValue;
    try {
      meta = await reserve(t, user, [{ index: 0, item }], limits);
    } catch (err) {
      if (!(err instanceof StaleRead)) throw err;
      const d = decide(user, await t.getMeta(user), [{ index: 0, item }], limits);
      const error = d.refused.get(0);
      if (error) return { ok: false, error };
      continue;
    }
    s.remember(user, meta);
    const old = slot.seq;
    slot = { seq: meta.lastSeq, cb: meta.totalBytes };
    last = meta.lastSeq;
    // Move the id to the new seq, unless a resend took it over meanwhile (then claim again).
    dedupeHeld = await t.putIf(
      encodeDedupe(user, { id: item.id, seq: slot.seq, expiresAt: item.expiresAt }, s.ttlGraceSeconds),
      '#s = :old',
      { ':old': { N: String(old) } },
      { '#s': 'seq' },
    );
  }
}

type Claim = { kind: 'claimed' } | { kind: 'duplicate'; seq: Seq } | { kind: 'wait' };

/** Write the id's dedupe entry for `seq`, or find who has it. */
async function claimId(t: TableClient, s: AppendSettings, user: UserId, item: AppendItem, seq: Seq): Promise<Claim> {
  const entry = encodeDedupe(user, { id: item.id, seq, expiresAt: item.expiresAt }, s.ttlGraceSeconds);
  if (await t.putIf(entry, 'attribute_not_exists(pk) OR #e <= :now', { ':now': { N: String(item.sentAt) } }, { '#e': 'exp' })) return { kind: 'claimed' };
  const it = await t.getItem(user, dedupeSk(item.id));
  if (!it) return { kind: 'wait' }; // gone meanwhile (native TTL): try again
  const d = decodeDedupe(it);
  if (d.seq === seq) return { kind: 'claimed' }; // our put, answered late
  if (d.expiresAt <= item.sentAt) return { kind: 'wait' };
  const v = await verify(t, s, user, d.seq);
  if (v === 'stored') return { kind: 'duplicate', seq: d.seq };
  if (v === 'wait') return { kind: 'wait' };
  // The original died (its seq is a tombstone): take the id over.
  const took = await t.putIf(entry, '#s = :old', { ':old': { N: String(d.seq) } }, { '#s': 'seq' });
  return took ? { kind: 'claimed' } : { kind: 'wait' };
}

/**
 * A reserved seq that will hold no message (the id was a duplicate): handed back if it is
 * still the last one reserved, else closed with a tombstone; its counts are given back.
 */
async function giveBack(t: TableClient, user: UserId, slot: Slot, item: AppendItem, last: Seq, graceSeconds: number): Promise<void> {
  const bytes = item.bytes;
  if (slot.seq === last) {
    try {
      await t.updateMeta(user, giveBackUpdate(slot.seq, bytes, item.from));
      return;
    } catch (err) {
      if (!(err instanceof StaleRead)) throw err;
    }
  }
  const ttl = ttlSeconds(Date.now() + 86_400_000, graceSeconds);
  if (await t.putIf(encodeTombstone(user, slot.seq, ttl, bytes, slot.cb))) await t.updateMeta(user, refundUpdate(1, bytes, item.from));
}
