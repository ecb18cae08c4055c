/**
 * Appending to one user's mailbox: seq assignment, dedupe, quotas and the message write
 * are one TransactWriteItems (an update of the meta item + message puts + dedupe puts).
 * Either all of a chunk is visible or none of it, and a later chunk can only commit
 * after this one (it is conditioned on the `last` this one wrote), so a reader never
 * sees seq N+1 committed while seq N is not.
 *
 * The meta update is conditioned only on what a send depends on (meta-writes.ts): `last`
 * unchanged, the quota still leaving room for what it adds, targeted devices still
 * registered. Acks and the sweeper lower `cnt`/`bytes` by ADD and never touch `last`, so
 * they do not invalidate a send; only another send to the same user does, and then the
 * chunk is recomputed from a fresh read. A TransactionConflict (two writers on the item
 * at the same instant) is retried as is in TableClient, without reading again.
 *
 * The first attempt does not read the dedupe entries: each dedupe put is conditioned
 * on the entry not existing, true for nearly every send, which saves a read per message.
 * A resend (or a refusal, which must not shadow a duplicate) redoes the chunk with the
 * entries read. A chunk that lost only the race for `last` is redone without them.
 *
 * A chunk holds at most 49 new messages (2 items each, plus the meta item, under the
 * 100-item limit) and about 3.5 MB (under the 4 MB limit). Lost races are retried for
 * the contention time budget; transient failures are retried inside TableClient. What
 * still fails gets UNAVAILABLE, item by item.
 */
import type { TransactWriteItem } from '@aws-sdk/client-dynamodb';
import { PoboxError, deviceNotRegistered, mailboxFull, senderQuotaExceeded } from '../../core/errors.js';
import type { DeviceId, MessageId, Seq, UserId } from '../../core/ids.js';
import type { StoredMessage } from '../../core/types.js';
import type { AppendItem, AppendLimits, AppendOutcome } from '../contract.js';
import { hasDevice } from '../rules.js';
import { newEpoch } from '../epoch.js';
import { decodeDedupe, decodeMessage, encodeDedupe, encodeMessage, itemSize, MAX_ITEM_BYTES, type Item, type MetaValue } from './codec.js';
import { dedupeSk, expiryShard, messageSk, pointerSk } from './keys.js';
import { sendUpdate } from './meta-writes.js';
import { StaleRead, type TableClient } from './queries.js';
import { contentionPause, withinBudget } from './retry.js';

export interface AppendSettings {
  sweepShards: number;
  ttlGraceSeconds: number;
}

const MAX_MESSAGES_PER_TX = 49;
const MAX_TX_BYTES = 3_500_000;
/** Items considered per pass: bounded by one BatchGetItem of dedupe keys. */
const MAX_CONSIDERED = 100;

/** The send lost the race for the meta item only (its dedupe conditions held). */
class LostRace extends StaleRead {}

export interface Entry {
  index: number;
  item: AppendItem;
}

export function emptyMeta(): MetaValue {
  return { epoch: newEpoch(), lastSeq: 0, count: 0, bytes: 0, floor: 0, devices: {}, ver: 0, senders: {} };
}

/** Append `entries` (all for `user`, in order), writing each outcome into `out`. */
export async function appendForUser(t: TableClient, s: AppendSettings, user: UserId, entries: Entry[], limits: AppendLimits, out: AppendOutcome[]): Promise<void> {
  let pending = entries;
  let stale = 0;
  let startedAt = Date.now();
  // First try without reading dedupe entries: the dedupe puts are conditioned on the
  // entry not existing, which holds for almost every send. A resend fails that condition
  // and the chunk is redone with the entries read (and expired ones handled).
  let readDedupe = false;
  while (pending.length > 0) {
    try {
      const done = await appendChunk(t, s, user, pending, limits, out, readDedupe);
      pending = pending.slice(done);
      stale = 0;
      startedAt = Date.now();
      readDedupe = false;
    } catch (err) {
      if (err instanceof StaleRead && withinBudget(startedAt, t.retry)) {
        t.capacity.retries++;
        if (err instanceof LostRace) {
          // Another send to this user committed first: recompute from a fresh read.
          await contentionPause(stale++, t.retry);
        } else if (readDedupe) {
          await contentionPause(stale++, t.retry);
        } else {
          readDedupe = true; // a resend, or a refusal to confirm: read the entries now
        }
        continue;
      }
      const e = err instanceof PoboxError ? err : new PoboxError('UNAVAILABLE', `could not store the message for ${user}: ${(err as Error).message}`, { cause: err });
      for (const p of pending) out[p.index] = { ok: false, error: e };
      return;
    }
  }
}

/** Commit the first chunk of `pending`; returns how many entries got their outcome. */
async function appendChunk(t: TableClient, s: AppendSettings, user: UserId, pending: Entry[], limits: AppendLimits, out: AppendOutcome[], readDedupe: boolean): Promise<number> {
  const considered = pending.slice(0, MAX_CONSIDERED);
  const stored = await t.getMeta(user);
  const meta = stored ? { ...stored, devices: { ...stored.devices }, senders: { ...stored.senders } } : emptyMeta();
  // What each sender adds in this chunk (fair quotas), for the meta update.
  const added = new Map<UserId, { count: number; bytes: number }>();
  const ids = [...new Set(considered.map((e) => e.item.id))];
  const dedupeItems = readDedupe ? await t.getMany(user, ids.map(dedupeSk)) : new Map<string, Item>();
  const seen = new Map<MessageId, { seq: Seq; expiresAt: number; fromThisChunk: boolean }>();
  for (const it of dedupeItems.values()) {
    const d = decodeDedupe(it);
    seen.set(d.id, { ...d, fromThisChunk: false });
  }
  // Dedupe entries past their expiry get overwritten below; fetch their messages.
  const latestSent = Math.max(...considered.map((e) => e.item.sentAt));
  const staleSeqs = [...seen.values()].filter((d) => d.expiresAt <= latestSent).map((d) => messageSk(d.seq));
  const oldMessages = staleSeqs.length > 0 ? await t.getMany(user, staleSeqs) : new Map();

  const tx: TransactWriteItem[] = [];
  const staged: Array<{ index: number; outcome: AppendOutcome }> = [];
  const targeted: DeviceId[] = [];
  let txBytes = 0;
  let messages = 0;
  let done = 0;
  for (const { index, item } of considered) {
    if (messages >= MAX_MESSAGES_PER_TX) break;
    done++;
    if (item.toDevice !== undefined && !hasDevice(meta.devices, item.toDevice)) {
      staged.push({ index, outcome: { ok: false, error: deviceNotRegistered(user, item.toDevice, 'toDevice') } });
      continue;
    }
    const prior = seen.get(item.id);
    if (prior && prior.expiresAt > item.sentAt) {
      staged.push({ index, outcome: { ok: true, seq: prior.seq, duplicate: true, epoch: meta.epoch } });
      continue;
    }
    // The expired predecessor may still be stored (not swept yet). Overwriting its dedupe
    // entry would lose the sweeper's pointer to it, so leave an expiry pointer instead.
    let old: StoredMessage | undefined;
    if (prior && !prior.fromThisChunk) {
      const it = oldMessages.get(messageSk(prior.seq));
      if (it) {
        const m = decodeMessage(it);
        if (m.id === item.id && m.expiresAt <= item.sentAt) old = m;
      }
    }
    // A refusal is final only once we know the id is not a duplicate (which would win).
    const refuse = (): void => {
      if (!readDedupe) throw new StaleRead('a refusal needs the dedupe entries read');
    };
    // No condition on the sender counters is needed: only sends raise them, and every
    // send is conditioned on `last`, so they can only have gone down since this read.
    const held = meta.senders[item.from] ?? { count: 0, bytes: 0 };
    if (limits.maxSenderMessages !== undefined && !item.senderQuotaExempt) {
      if (held.count + 1 > limits.maxSenderMessages || held.bytes + item.bytes > (limits.maxSenderBytes ?? Infinity)) {
        refuse();
        staged.push({ index, outcome: { ok: false, error: senderQuotaExceeded(user, item.from) } });
        continue;
      }
    }
    if (meta.count + 1 > limits.maxMailboxMessages || meta.bytes + item.bytes > limits.maxMailboxBytes) {
      refuse();
      staged.push({ index, outcome: { ok: false, error: mailboxFull(user) } });
      continue;
    }
    const seq = meta.lastSeq + 1;
    const msgItem = encodeMessage({ ...item, seq }, s.ttlGraceSeconds);
    const size = itemSize(msgItem);
    if (size > MAX_ITEM_BYTES) {
      refuse();
      staged.push({
        index,
        outcome: { ok: false, error: new PoboxError('PAYLOAD_TOO_LARGE', `message item would be ${size} bytes; DynamoDB allows ${MAX_ITEM_BYTES}`, { field: 'body' }) },
      });
      continue;
    }
    if (messages > 0 && txBytes + size > MAX_TX_BYTES) {
      done--; // leave it for the next chunk
      break;
    }
    if (old) {
      const pointer = { id: old.id, seq: old.seq, expiresAt: old.expiresAt };
      tx.push({ Put: { TableName: t.table, Item: encodeDedupe(user, pointer, expiryShard(user, s.sweepShards), s.ttlGraceSeconds, pointerSk(old.seq)) } });
    }
    meta.lastSeq = seq;
    meta.count += 1;
    meta.bytes += item.bytes;
    meta.senders[item.from] = { count: held.count + 1, bytes: held.bytes + item.bytes };
    const a = added.get(item.from) ?? { count: 0, bytes: 0 };
    a.count++;
    a.bytes += item.bytes;
    added.set(item.from, a);
    txBytes += size + 200;
    messages++;
    tx.push({ Put: { TableName: t.table, Item: msgItem } });
    if (item.toDevice !== undefined) targeted.push(item.toDevice);
    const dedupe = encodeDedupe(user, { id: item.id, seq, expiresAt: item.expiresAt }, expiryShard(user, s.sweepShards), s.ttlGraceSeconds);
    tx.push({ Put: { TableName: t.table, Item: dedupe, ...(readDedupe ? {} : { ConditionExpression: 'attribute_not_exists(pk)' }) } });
    seen.set(item.id, { seq, expiresAt: item.expiresAt, fromThisChunk: true });
    staged.push({ index, outcome: { ok: true, seq, duplicate: false, epoch: meta.epoch } });
  }
  // Nothing is written (not even a new meta item) when nothing was stored.
  if (tx.length > 0) {
    if (!stored) {
      tx.push(t.metaCreate(user, meta));
    } else {
      const change = {
        expectedLast: stored.lastSeq,
        newLast: meta.lastSeq,
        count: meta.count - stored.count,
        bytes: meta.bytes - stored.bytes,
        maxCount: limits.maxMailboxMessages,
        maxBytes: limits.maxMailboxBytes,
        devices: targeted,
        senders: [...added].map(([from, a]) => ({ from, ...a })),
      };
      tx.push(t.metaUpdate(user, sendUpdate(change)));
    }
    const metaIndex = tx.length - 1;
    try {
      await t.transact(tx);
    } catch (err) {
      if (err instanceof StaleRead && err.failed.length > 0 && err.failed.every((i) => i === metaIndex)) {
        throw new LostRace(err.message, { cause: err });
      }
      throw err;
    }
  }
  for (const { index, outcome } of staged) out[index] = outcome;
  return done;
}
