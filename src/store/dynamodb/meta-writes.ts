/**
 * The conditional updates of a user's meta item. Each writer touches only the attributes
 * it changes (SET / ADD / REMOVE, never a whole-item put) and is conditioned only on what
 * its own computation depends on, so writers that do not depend on each other never
 * invalidate each other:
 *
 * - a send changes `last`, `cnt`, `bytes` and depends on `last` (the seqs it assigns),
 *   the quota (`cnt`/`bytes` small enough for what it adds) and, for device-targeted
 *   messages, on the device existing;
 * - an ack, a device registration or removal, a purge and the sweeper change the device
 *   state (`devs`, `floor`) and lower `cnt`/`bytes` by what they deleted; what they
 *   delete is computed from the device state and `floor`, so they are conditioned on
 *   `ver`, the version of that state, and bump it. Sends never touch `ver`.
 *
 * Because `cnt`/`bytes` move by ADD, a send and an ack both change them without either
 * losing the other's change. Removal and purge also depend on `last` (they release
 * everything up to it), so they are conditioned on it too.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { DeviceId, Seq, UserId } from '../../core/ids.js';
import { senderBytesAttr, senderCountAttr, type MetaValue } from './codec.js';
import type { DeviceValue } from '../rules.js';

/** The expression part of an UpdateItem / transaction Update (key and table added by TableClient). */
export interface MetaUpdate {
  UpdateExpression: string;
  ConditionExpression: string;
  ExpressionAttributeNames: Record<string, string>;
  ExpressionAttributeValues: Record<string, AttributeValue>;
}

/** Placeholders for names and values, so device ids never need escaping. */
class Expr {
  readonly names: Record<string, string> = {};
  readonly values: Record<string, AttributeValue> = {};
  private next = 0;
  name(...path: string[]): string {
    return path
      .map((segment) => {
        const k = `#n${this.next++}`;
        this.names[k] = segment;
        return k;
      })
      .join('.');
  }
  num(v: number): string {
    const k = `:v${this.next++}`;
    this.values[k] = { N: String(v) };
    return k;
  }
  value(v: AttributeValue): string {
    const k = `:v${this.next++}`;
    this.values[k] = v;
    return k;
  }
  build(set: string[], add: string[], remove: string[], conditions: string[]): MetaUpdate {
    const parts: string[] = [];
    if (set.length > 0) parts.push(`SET ${set.join(', ')}`);
    if (add.length > 0) parts.push(`ADD ${add.join(', ')}`);
    if (remove.length > 0) parts.push(`REMOVE ${remove.join(', ')}`);
    return {
      UpdateExpression: parts.join(' '),
      ConditionExpression: conditions.join(' AND '),
      ExpressionAttributeNames: this.names,
      ExpressionAttributeValues: this.values,
    };
  }
}

export interface SendChange {
  /** `last` as read; the seqs handed out follow it. */
  expectedLast: Seq;
  newLast: Seq;
  /** Messages and bytes added. */
  count: number;
  bytes: number;
  maxCount: number;
  maxBytes: number;
  /** Devices the added messages are addressed to (they must still be registered). */
  devices: DeviceId[];
  /** What each sender added (fair quotas' counters; ADD, no condition: see append.ts). */
  senders?: Array<{ from: UserId; count: number; bytes: number }>;
}

/** The meta part of a send transaction. */
export function sendUpdate(c: SendChange): MetaUpdate {
  const e = new Expr();
  const last = e.name('last');
  const cnt = e.name('cnt');
  const bytes = e.name('bytes');
  const conditions = [`${last} = ${e.num(c.expectedLast)}`, `${cnt} <= ${e.num(c.maxCount - c.count)}`, `${bytes} <= ${e.num(c.maxBytes - c.bytes)}`];
  for (const d of new Set(c.devices)) conditions.push(`attribute_exists(${e.name('devs', d)})`);
  const add = [`${cnt} ${e.num(c.count)}`, `${bytes} ${e.num(c.bytes)}`];
  for (const sd of c.senders ?? []) add.push(`${e.name(senderCountAttr(sd.from))} ${e.num(sd.count)}`, `${e.name(senderBytesAttr(sd.from))} ${e.num(sd.bytes)}`);
  return e.build([`${last} = ${e.num(c.newLast)}`], add, [], conditions);
}

export interface SenderDecrement {
  from: UserId;
  /** The sender's message counter as read. */
  held: number;
  count: number;
  bytes: number;
}

/** Per-sender decrements for a StateChange (fair quotas), against the counters as read in `meta`. */
export function senderDecrements(meta: MetaValue, bySender: ReadonlyMap<UserId, { count: number; bytes: number }>): SenderDecrement[] {
  return [...bySender].map(([from, d]) => ({ from, held: meta.senders[from]?.count ?? 0, ...d }));
}

export interface StateChange {
  /** `ver` as read. */
  expectedVer: number;
  /** Also require `last` unchanged (the change released everything up to it). */
  expectedLast?: Seq;
  setCursor?: { device: DeviceId; cursor: Seq };
  addDevice?: { device: DeviceId; value: DeviceValue };
  removeDevice?: DeviceId;
  floor?: Seq;
  /** Added to cnt / bytes (negative: deleted or released). */
  countDelta?: number;
  bytesDelta?: number;
  /** Set cnt and bytes to zero instead (purge, conditioned on `last`). */
  zero?: boolean;
  /**
   * Fair quotas: lower these senders' counters by what was deleted. `held` is the
   * counter as read: when the decrement empties it, the attributes are removed instead,
   * conditioned on the counter still being what was read (a send since then retries).
   */
  senders?: SenderDecrement[];
  /** Remove these senders' counters outright (purge: nothing of theirs is left). */
  dropSenders?: UserId[];
}

/** A change of the device state (ack, register, remove, purge, sweep). */
export function stateUpdate(c: StateChange): MetaUpdate {
  const e = new Expr();
  const ver = e.name('ver');
  const set = [`${ver} = ${e.num(c.expectedVer + 1)}`];
  const add: string[] = [];
  const remove: string[] = [];
  const conditions = [`${ver} = ${e.num(c.expectedVer)}`];
  if (c.expectedLast !== undefined) conditions.push(`${e.name('last')} = ${e.num(c.expectedLast)}`);
  if (c.setCursor) set.push(`${e.name('devs', c.setCursor.device, 'c')} = ${e.num(c.setCursor.cursor)}`);
  if (c.addDevice) {
    const { cursor, registeredAt } = c.addDevice.value;
    set.push(`${e.name('devs', c.addDevice.device)} = ${e.value({ M: { c: { N: String(cursor) }, r: { N: String(registeredAt) } } })}`);
  }
  if (c.removeDevice !== undefined) remove.push(e.name('devs', c.removeDevice));
  if (c.floor !== undefined) set.push(`${e.name('floor')} = ${e.num(c.floor)}`);
  if (c.zero) {
    set.push(`${e.name('cnt')} = ${e.num(0)}`, `${e.name('bytes')} = ${e.num(0)}`);
  } else {
    if (c.countDelta) add.push(`${e.name('cnt')} ${e.num(c.countDelta)}`);
    if (c.bytesDelta) add.push(`${e.name('bytes')} ${e.num(c.bytesDelta)}`);
  }
  for (const sd of c.senders ?? []) {
    const sc = e.name(senderCountAttr(sd.from));
    const sb = e.name(senderBytesAttr(sd.from));
    if (sd.count >= sd.held) {
      remove.push(sc, sb);
      conditions.push(`(attribute_not_exists(${sc}) OR ${sc} = ${e.num(sd.held)})`);
    } else {
      add.push(`${sc} ${e.num(-sd.count)}`, `${sb} ${e.num(-sd.bytes)}`);
    }
  }
  for (const from of c.dropSenders ?? []) remove.push(e.name(senderCountAttr(from)), e.name(senderBytesAttr(from)));
  return e.build(set, add, remove, conditions);
}
