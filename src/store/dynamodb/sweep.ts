/**
 * The sweeper. DynamoDB's TTL deletes late and tells nobody, so quotas (count and bytes
 * in the meta item) would drift if we left expiry to it. Instead every message's dedupe
 * item sits in a sparse index partition ("x#" + shard of the user) sorted by expiry;
 * the sweeper walks the shards for entries due by `now`, re-reads them consistently
 * (the index is eventually consistent), and per user commits one transaction: the meta
 * item (count and bytes lowered by ADD, conditioned on its device-state version, which
 * sends never change) + the expired messages +
 * the dedupe items (each conditioned on still holding the expiry we saw, so an id sent
 * again after expiry keeps its new entry). Native TTL (expiry + a grace period) only
 * frees storage when no pobox sweeper runs.
 */
import type { TransactWriteItem } from '@aws-sdk/client-dynamodb';
import type { UserId } from '../../core/ids.js';
import type { SweepOutcome } from '../contract.js';
import { decodeDedupe, decodeMessage, type Item } from './codec.js';
import { expiryGpk, itemKey, messageSk, timeKey } from './keys.js';
import { StaleRead, type TableClient } from './queries.js';
import { senderDecrements, stateUpdate } from './meta-writes.js';
import { contentionPause, withinBudget } from './retry.js';
import { isReleased } from './released.js';

/** Dedupe entries per transaction: 2 deletes each, plus the meta item. */
const PER_TX = 49;

export async function sweep(t: TableClient, shards: number, now: number, max: number): Promise<SweepOutcome> {
  const due: Item[] = [];
  for (let shard = 0; shard < shards && due.length <= max; shard++) {
    due.push(...(await t.queryIndex(expiryGpk(shard), timeKey(now), undefined, max + 1 - due.length)));
  }
  const more = due.length > max;
  if (more) due.length = max;
  const byUser = new Map<UserId, IndexEntry[]>();
  for (const it of due) {
    const user = it.pk!.S!;
    const list = byUser.get(user) ?? [];
    list.push({ sk: it.sk!.S!, seq: Number(it.seq?.N ?? 0), expiresAt: Number(it.gsk!.S!) });
    byUser.set(user, list);
  }
  const total: SweepOutcome = { expired: 0, expiredBytes: 0, cleaned: 0, more };
  for (const [user, sks] of byUser) {
    for (let i = 0; i < sks.length; i += PER_TX) {
      const r = await sweepUserChunk(t, user, sks.slice(i, i + PER_TX), now);
      total.expired += r.expired;
      total.expiredBytes += r.expiredBytes;
      total.cleaned += r.cleaned;
    }
  }
  return total;
}

interface IndexEntry {
  sk: string;
  seq: number;
  expiresAt: number;
}

/**
 * Usually the messages are long gone (acked) and only the dedupe entries are left: each
 * is one conditional DeleteItem (1 write unit, no transaction, no meta item). Only when
 * an expired message is still stored does the chunk take the transactional path.
 */
async function sweepUserChunk(t: TableClient, user: UserId, entries: IndexEntry[], now: number): Promise<Omit<SweepOutcome, 'more'>> {
  // Messages at or below the floor were acked by every device (deleted, or released for
  // native TTL to collect): only those above it can still be stored and counted.
  const meta = await t.getMeta(user);
  const floor = meta?.floor ?? 0;
  const messages = await t.getMany(
    user,
    entries.filter((e) => e.seq > floor).map((e) => messageSk(e.seq)),
  );
  const live = entries.some((e) => {
    const it = messages.get(messageSk(e.seq));
    return it !== undefined && decodeMessage(it).expiresAt <= now;
  });
  if (!live) {
    let cleaned = 0;
    for (const e of entries) if (await t.deleteIfExpiry(user, e.sk, e.expiresAt)) cleaned++;
    return { expired: 0, expiredBytes: 0, cleaned };
  }
  const dedupeSks = entries.map((e) => e.sk);
  const startedAt = Date.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await trySweepUserChunk(t, user, dedupeSks, now);
    } catch (err) {
      if (!(err instanceof StaleRead) || !withinBudget(startedAt, t.retry)) throw err;
      t.capacity.retries++;
      await contentionPause(attempt, t.retry);
    }
  }
}

async function trySweepUserChunk(t: TableClient, user: UserId, dedupeSks: string[], now: number): Promise<Omit<SweepOutcome, 'more'>> {
  const meta = await t.getMeta(user);
  // Dedupe items and expiry pointers have the same shape; both point at one message.
  const dedupes = [...(await t.getMany(user, dedupeSks)).values()].map((it) => ({ ...decodeDedupe(it), sk: it.sk!.S! })).filter((d) => d.expiresAt <= now);
  const messages = await t.getMany(
    user,
    dedupes.map((d) => messageSk(d.seq)),
  );
  const tx: TransactWriteItem[] = [];
  let expired = 0;
  let expiredBytes = 0;
  let freedCount = 0;
  let freedBytes = 0;
  const bySender = new Map<UserId, { count: number; bytes: number }>();
  const doomed = new Set<number>();
  for (const d of dedupes) {
    tx.push({
      Delete: {
        TableName: t.table,
        Key: itemKey(user, d.sk),
        ConditionExpression: '#e = :e',
        ExpressionAttributeNames: { '#e': 'exp' },
        ExpressionAttributeValues: { ':e': { N: String(d.expiresAt) } },
      },
    });
    const it = messages.get(messageSk(d.seq));
    if (!it || doomed.has(d.seq)) continue; // one action per item in a transaction
    doomed.add(d.seq);
    const m = decodeMessage(it);
    if (m.id !== d.id || m.expiresAt > now) continue;
    tx.push({ Delete: { TableName: t.table, Key: itemKey(user, messageSk(m.seq)), ConditionExpression: 'attribute_exists(pk)' } });
    // A released message was already reported deleted (by the ack that released it).
    if (meta && isReleased(meta, m.seq, m.toDevice)) continue;
    expired++;
    expiredBytes += m.bytes;
    freedCount++;
    freedBytes += m.bytes;
    const b = bySender.get(m.from) ?? { count: 0, bytes: 0 };
    b.count++;
    b.bytes += m.bytes;
    bySender.set(m.from, b);
  }
  if (tx.length === 0) return { expired: 0, expiredBytes: 0, cleaned: 0 };
  if (meta && freedCount > 0) {
    // Bumps ver: an ack that read the state before this sweep must not count these again.
    tx.push(t.metaUpdate(user, stateUpdate({ expectedVer: meta.ver, countDelta: -freedCount, bytesDelta: -freedBytes, senders: senderDecrements(meta, bySender) })));
  }
  await t.transact(tx);
  return { expired, expiredBytes, cleaned: dedupes.length };
}
