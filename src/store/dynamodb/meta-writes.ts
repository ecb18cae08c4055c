/**
 * The updates of a user's meta item. Each writer touches only the attributes it changes
 * (SET / ADD / REMOVE, never a whole-item put) and is conditioned only on what its own
 * computation depends on, so writers that do not depend on each other never invalidate
 * each other:
 *
 * - a seq reservation (a send) ADDs to `last`, `cnt`, `bytes`, `tb` and is conditioned
 *   only on the quota leaving room for what it adds and on the devices it addresses being
 *   registered and not leaving. It reads nothing first: DynamoDB returns the new `last`.
 *   Two reservations never conflict; they are serialised by DynamoDB on the item.
 * - an ack, a device registration or removal, a purge and the sweeper change the device
 *   state (`devs`, `floor`) and lower `cnt`/`bytes` by what they released; what they
 *   release is computed from the device state and `floor`, so they are conditioned on
 *   `ver`, the version of that state, and bump it. Sends never touch `ver`.
 * - a reader that closes a hole (a seq whose writer died) lowers `cnt`/`bytes` by ADD.
 *
 * Because `cnt`/`bytes` move by ADD, sends, acks and closers all change them without
 * losing each other's change.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { DeviceId, Seq, UserId } from '../../core/ids.js';
import type { GapNotice } from '../../core/types.js';
import { encodeGap, senderBytesAttr, senderCountAttr, type MetaValue } from './codec.js';
import type { DeviceValue } from '../rules.js';
import { USERS_GPK } from './keys.js';

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

export interface Reservation {
  /** Seqs reserved (one per message). */
  count: number;
  bytes: number;
  maxCount: number;
  maxBytes: number;
  /** Devices the messages are addressed to (they must be registered and not leaving). */
  devices: DeviceId[];
  /** The mailbox's epoch if this creates it. */
  epoch: string;
  user: string;
  /** Wall-clock ms, for readers' lease on holes. */
  now: number;
  /** The earliest expiry among the messages (kept if an earlier one is known). */
  firstExpiry: number;
  /** What each sender adds (fair quotas' counters), and the share it may hold (absent: not checked). */
  senders: Array<{ from: UserId; count: number; bytes: number; maxCount?: number; maxBytes?: number }>;
}

/**
 * Reserve `count` seqs: the new `last` comes back (ReturnValues ALL_NEW). Creates the
 * meta item (and its users-index entry) when the user has none.
 */
export function reserveUpdate(r: Reservation): MetaUpdate {
  const e = new Expr();
  const ifAbsent = (name: string, v: AttributeValue): string => {
    const n = e.name(name);
    return `${n} = if_not_exists(${n}, ${e.value(v)})`;
  };
  const set = [
    ifAbsent('epoch', { S: r.epoch }),
    ifAbsent('devs', { M: {} }),
    ifAbsent('ver', { N: '0' }),
    ifAbsent('floor', { N: '0' }),
    ifAbsent('gpk', { S: USERS_GPK }),
    ifAbsent('gsk', { S: r.user }),
    ifAbsent('fx', { N: String(r.firstExpiry) }),
    `${e.name('rat')} = ${e.num(r.now)}`,
  ];
  const add = [`${e.name('last')} ${e.num(r.count)}`, `${e.name('cnt')} ${e.num(r.count)}`, `${e.name('bytes')} ${e.num(r.bytes)}`, `${e.name('tb')} ${e.num(r.bytes)}`];
  const cnt = e.name('cnt');
  const bytes = e.name('bytes');
  const conditions = [
    `(attribute_not_exists(${cnt}) OR ${cnt} <= ${e.num(r.maxCount - r.count)})`,
    `(attribute_not_exists(${bytes}) OR ${bytes} <= ${e.num(r.maxBytes - r.bytes)})`,
  ];
  for (const d of new Set(r.devices)) conditions.push(`attribute_exists(${e.name('devs', d)})`, `attribute_not_exists(${e.name('devs', d, 'l')})`);
  for (const sd of r.senders) {
    const sc = e.name(senderCountAttr(sd.from));
    const sb = e.name(senderBytesAttr(sd.from));
    add.push(`${sc} ${e.num(sd.count)}`, `${sb} ${e.num(sd.bytes)}`);
    if (sd.maxCount !== undefined) conditions.push(`(attribute_not_exists(${sc}) OR ${sc} <= ${e.num(sd.maxCount - sd.count)})`);
    if (sd.maxBytes !== undefined) conditions.push(`(attribute_not_exists(${sb}) OR ${sb} <= ${e.num(sd.maxBytes - sd.bytes)})`);
  }
  return e.build(set, add, [], conditions);
}

/**
 * Give back what reservations counted for seqs that will never hold a message (closed
 * holes, duplicates); the sender's counters too when it is known (a hole's is not).
 */
export function refundUpdate(count: number, bytes: number, from?: UserId): MetaUpdate {
  const e = new Expr();
  const add = [`${e.name('cnt')} ${e.num(-count)}`];
  if (bytes !== 0) add.push(`${e.name('bytes')} ${e.num(-bytes)}`);
  if (from !== undefined) add.push(`${e.name(senderCountAttr(from))} ${e.num(-count)}`, `${e.name(senderBytesAttr(from))} ${e.num(-bytes)}`);
  return e.build([], add, [], [`attribute_exists(${e.name('last')})`]);
}

/** Lower the sweeper's earliest-expiry bound (a message expiring before the one that set it). */
export function lowerFirstExpiryUpdate(expiresAt: number): MetaUpdate {
  const e = new Expr();
  const fx = e.name('fx');
  const v = e.num(expiresAt);
  return e.build([`${fx} = ${v}`], [], [], [`(attribute_not_exists(${fx}) OR ${fx} > ${v})`]);
}

/** Hand back the last reserved seq (its message was a duplicate): only if no seq was reserved after it. */
export function giveBackUpdate(seq: Seq, bytes: number, from: UserId): MetaUpdate {
  const e = new Expr();
  const last = e.name('last');
  const add = [`${last} ${e.num(-1)}`, `${e.name('cnt')} ${e.num(-1)}`, `${e.name('bytes')} ${e.num(-bytes)}`, `${e.name('tb')} ${e.num(-bytes)}`];
  add.push(`${e.name(senderCountAttr(from))} ${e.num(-1)}`, `${e.name(senderBytesAttr(from))} ${e.num(-bytes)}`);
  return e.build([], add, [], [`${last} = ${e.num(seq)}`]);
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
  /** Set cnt and bytes to zero instead (purge, or every device has acked up to `last`; conditioned on `last`). */
  zero?: boolean;
  /** Mark a device as leaving (removal, first step). */
  markLeaving?: DeviceId;
  /** The sweeper's new lower bound of the earliest live expiry; null removes it. */
  firstExpiry?: number | null;
  /**
   * Fair quotas: lower these senders' counters by what was released. `held` is the
   * counter as read: when the decrement empties it, the attributes are removed instead,
   * conditioned on the counter still being what was read (a send since then retries).
   */
  senders?: SenderDecrement[];
  /** Remove these senders' counters outright (purge, or everything released: nothing of theirs is left). */
  dropSenders?: UserId[];
  /** Store these devices' merged gap notices (the sweeper, a purge: computed from the device state read, hence `ver`). */
  setGaps?: ReadonlyMap<DeviceId, GapNotice>;
  /** Remove this device's gap notice (its ack reached the notice's `to`). */
  clearGap?: DeviceId;
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

/** Count one released message toward its sender's decrement. */
export function addSender(bySender: Map<UserId, { count: number; bytes: number }>, from: UserId | undefined, bytes: number): void {
  if (from === undefined) return;
  const b = bySender.get(from) ?? { count: 0, bytes: 0 };
  b.count++;
  b.bytes += bytes;
  bySender.set(from, b);
}

/** A change of the device state (ack, register, remove, purge, sweep), conditioned on `ver`. */
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
  for (const [device, gap] of c.setGaps ?? []) set.push(`${e.name('devs', device, 'g')} = ${e.value(encodeGap(gap))}`);
  if (c.clearGap !== undefined) remove.push(e.name('devs', c.clearGap, 'g'));
  if (c.markLeaving !== undefined) {
    set.push(`${e.name('devs', c.markLeaving, 'l')} = ${e.value({ BOOL: true })}`);
    conditions.push(`attribute_exists(${e.name('devs', c.markLeaving)})`);
  }
  if (c.firstExpiry === null) remove.push(e.name('fx'));
  else if (c.firstExpiry !== undefined) set.push(`${e.name('fx')} = ${e.num(c.firstExpiry)}`);
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
