/**
 * One page of a device's view, strongly consistent, with the gap check that keeps a
 * reader from skipping a seq whose transaction is still being applied.
 */
import { deviceNotRegistered } from '../../core/errors.js';
import type { Seq } from '../../core/ids.js';
import type { ReadPage, StoredMessage } from '../../core/types.js';
import type { ReadRequest } from '../contract.js';
import { hasDevice } from '../rules.js';
import { decodeMessage, decodeMeta } from './codec.js';
import { messageSk, META_SK } from './keys.js';
import type { TableClient } from './queries.js';

/** TransactGetItems takes 100 keys: the meta item and 99 gaps. */
const MAX_GAPS_CHECKED = 99;

/**
 * One attempt at a page; undefined when it must be read again.
 *
 * A Query is only read-committed: while a transaction is being applied it may return
 * seq N+1 and not yet seq N, and a live session reading after its last seq would skip
 * N forever. So any gap in the seqs examined (normally a message deleted for another
 * device, or swept) is checked with a serializable TransactGetItems of the meta item
 * and the missing keys: absent there means deleted; present means "still being
 * applied", and the page is read again. More than 99 gaps: the page stops before the
 * first gap not checked, and the next read goes on from there.
 */
export async function readOnce(t: TableClient, req: ReadRequest, scanBudget: number): Promise<ReadPage | undefined> {
  const meta = await t.getMeta(req.user);
  if (!meta || !hasDevice(meta.devices, req.device)) {
    throw deviceNotRegistered(req.user, req.device);
  }
  const after = Math.max(req.afterSeq, meta.devices[req.device]!.cursor);
  let messages: StoredMessage[] = [];
  let nextAfter = after;
  let scanned = 0;
  let more = false;
  const examined: Seq[] = [];
  // Bounded by the last seq of the meta item read first: the page and lastSeq agree.
  const start = Math.max(after, meta.floor);
  if (start >= meta.lastSeq) return { epoch: meta.epoch, messages, nextAfter, more, lastSeq: meta.lastSeq };
  await t.queryRange(req.user, messageSk(start + 1), messageSk(meta.lastSeq), Math.min(req.limit + 1, scanBudget + 1), (items) => {
    for (const item of items) {
      if (messages.length >= req.limit || scanned >= scanBudget) {
        more = true;
        return false;
      }
      scanned++;
      const m = decodeMessage(item);
      examined.push(m.seq);
      nextAfter = m.seq;
      if (m.expiresAt <= req.now) continue;
      if (m.toDevice !== undefined && m.toDevice !== req.device) continue;
      messages.push(m);
    }
    return true;
  });
  const end = more ? nextAfter : meta.lastSeq;
  const gaps: Seq[] = [];
  let firstUnchecked: Seq | undefined;
  let i = 0;
  for (let seq = start + 1; seq <= end; seq++) {
    if (examined[i] === seq) {
      i++;
      continue;
    }
    if (gaps.length === MAX_GAPS_CHECKED) {
      firstUnchecked = seq;
      break;
    }
    gaps.push(seq);
  }
  if (gaps.length === 0) return { epoch: meta.epoch, messages, nextAfter, more, lastSeq: meta.lastSeq };
  const snap = await t.snapshot(req.user, [META_SK, ...gaps.map(messageSk)]);
  const snapMeta = snap.get(META_SK);
  if (!snapMeta || decodeMeta(snapMeta).lastSeq < gaps[gaps.length - 1]!) return undefined;
  if (gaps.some((g) => snap.has(messageSk(g)))) return undefined;
  if (firstUnchecked !== undefined) {
    messages = messages.filter((m) => m.seq < firstUnchecked);
    nextAfter = firstUnchecked - 1;
    more = true;
  } else {
    // Every gap up to `end` is known deleted: continue after it, not before it again.
    nextAfter = end;
  }
  return { epoch: meta.epoch, messages, nextAfter, more, lastSeq: meta.lastSeq };
}
