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
 * - a device registration or removal, a purge and the sweeper change the device state
 *   (`devs`, `floor`) and lower `cnt`/`bytes` by what they released; what they release is
 *   computed from the whole device state and `floor`, so they are conditioned on `ver`,
 *   the version of that state, and bump it. Sends never touch `ver`.
 * - registering a device when the mailbox has devices already releases nothing and
 *   depends on nothing but the device being new and the device count: conditioned on
 *   exactly that (addDeviceUpdate), it bumps `ver` by ADD.
 * - an ack bumps `ver` too (ADD, so those writers see every cursor move) but is not
 *   conditioned on it: only on the part of the state its computation reads
 *   (ackUpdate below has the argument), so another device's ack does not invalidate it.
 * - a reader that closes a hole (a seq whose writer died) lowers `cnt`/`bytes` by ADD.
 *
 * Because `cnt`/`bytes` move by ADD, sends, acks and closers all change them without
 * losing each other's change.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { DeviceId, Seq, UserId } from '../../core/ids.js';
import type { GapNotice } from '../../core/types.js';
import { hasDevice } from '../rules.js';
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

/** Lower senders' counters by what was released; remove those it empties, conditioned on the count as read. */
function senderChanges(e: Expr, senders: readonly SenderDecrement[], add: string[], remove: string[], conditions: string[]): void {
  for (const sd of senders) {
    const sc = e.name(senderCountAttr(sd.from));
    const sb = e.name(senderBytesAttr(sd.from));
    if (sd.count >= sd.held) {
      remove.push(sc, sb);
      conditions.push(`(attribute_not_exists(${sc}) OR ${sc} = ${e.num(sd.held)})`);
    } else {
      add.push(`${sc} ${e.num(-sd.count)}`, `${sb} ${e.num(-sd.bytes)}`);
    }
  }
}

/** A change of the device state (register, remove, purge, sweep), conditioned on `ver`. */
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
  senderChanges(e, c.senders ?? [], add, remove, conditions);
  for (const from of c.dropSenders ?? []) remove.push(e.name(senderCountAttr(from)), e.name(senderBytesAttr(from)));
  return e.build(set, add, remove, conditions);
}

/**
 * Devices beyond this many: an ack is conditioned on `ver` instead of on each device's
 * cursor (ackUpdate), which keeps its condition expression well inside DynamoDB's 4 KB
 * limit. The default maxDevicesPerUser is 32.
 */
export const ACK_GUARD_MAX_DEVICES = 32;

/**
 * K of an ack of `device` to `upTo`: the device's old cursor c, raised to the lowest
 * cursor of the other devices but not past `upTo`: K = max(c, min(others, upTo)). What an
 * ack releases is fixed by c, K and upTo alone (rules.ts planAfterAck): every message in
 * (c, K] (every other device is past it), and the device's own messages in (K, upTo].
 */
export function ackBound(meta: MetaValue, device: DeviceId, upTo: Seq): Seq {
  let k = upTo;
  for (const [d, v] of Object.entries(meta.devices)) if (d !== device && v.cursor < k) k = v.cursor;
  return Math.max(meta.devices[device]!.cursor, k);
}

export interface AckWrite {
  device: DeviceId;
  /** The meta item the ack computed from (read by the ack, or remembered from this node's read). */
  read: MetaValue;
  /** The new cursor; absent when the ack only removes the device's gap notice (it is at or below the cursor). */
  upTo?: Seq;
  /** The new floor, when it rises. */
  floor?: Seq;
  countDelta?: number;
  bytesDelta?: number;
  senders?: SenderDecrement[];
  /** Everything up to `last` as read is released: cnt and bytes to 0, every sender's counters removed. */
  zero?: boolean;
  /** The device's gap notice after the ack: null removes it, a notice replaces it (an admin's skip), absent keeps it. */
  gap?: GapNotice | null;
}

/**
 * An ack's update: the cursor, the floor, the counters lowered by what it released, the
 * gap notice; ADD ver 1.
 *
 * Its condition covers exactly what the ack's computation read, and nothing another
 * device's ack changes, so acks of a user's devices on different nodes do not invalidate
 * each other (conditioning on `ver`, as the other writers do, made every such ack fail
 * and read again). The argument, part by part, with c the device's cursor as read, u the
 * new cursor and K = ackBound (max(c, min(other cursors, u))):
 *
 * 1. What it releases is fixed by (c, K, u), the floor, the messages in (c, u] and which
 *    devices exist (rules.ts planAfterAck; released.ts isReleased). Message items never
 *    change once written; only a sweep or a purge removes one, never before the update
 *    of the meta item that records it (the sweeper's tombstones are written in the same
 *    transaction as that update, a purge deletes after it), and the device set changes
 *    only by registration and removal.
 * 2. `devs.<d>.c = c`: its own cursor. Another ack of the same device (say from another
 *    node) fails this, so a cursor never moves backwards and nothing is released twice.
 * 3. `epoch` as read, `size(devs)` as read and `devs.<o>.c >= ` each other device's cursor
 *    as read: the same device set (a removed device, a new one, or a device removed and
 *    registered again with a lower cursor fails it). Cursors of the same devices only
 *    grow, so every other device stays at or past what was read: min(others) can only be
 *    higher than read.
 * 4. If K < u: `devs.<o>.c <= K` for at least one other device that was at or below K
 *    when read. With 3, min(others, u) is still what K was computed from, so (c, K, u)
 *    and the release are the same. If K = u every other device was past u already and
 *    still is: no condition. This is the only part another device's ack can break, and
 *    only when that ack took the last device that was behind past K: then this ack must
 *    release more (the messages all devices have now acked) and it is computed again.
 * 5. The floor: `floor = ` as read when it was at or above c or when the ack raises it
 *    (it then rises from exactly that value); otherwise `floor <= c`. Another device's ack
 *    can raise the floor only to a minimum of cursors that includes this device's, so at
 *    most to c, and seqs up to c are outside (c, u]: it breaks neither form. A purge or
 *    the sweeper raising it past c fails it.
 * 6. The device's gap notice as read (`f`, `t`, `n`, or absent): the sweeper and a purge
 *    record every message they remove above this device's cursor that was for it there,
 *    so a removal in (c, u] (of a message this ack would count) fails this; removals of
 *    messages for other devices are not in this ack's count (they are at or below those
 *    devices' cursors, or addressed elsewhere).
 * 7. Zeroing (every device at `last`): `last` as read, so no send came in between.
 * 8. A sender's counters are removed when the release empties them, conditioned on the
 *    count as read (a send from that sender since then fails it).
 *
 * Sends ADD to cnt/bytes/last and touch none of these; registration, removal, a purge and
 * the sweeper stay conditioned on `ver`, which every ack bumps. With more than
 * ACK_GUARD_MAX_DEVICES devices, 3 and 4 are replaced by `ver` as read (every change of
 * the device state moves it: such an ack can fail on another device's ack, and is
 * computed again).
 */
export function ackUpdate(a: AckWrite): MetaUpdate {
  const e = new Expr();
  const { read, device } = a;
  const own = read.devices[device]!;
  const set: string[] = [];
  const add = [`${e.name('ver')} ${e.num(1)}`];
  const remove: string[] = [];
  const conditions = [`${e.name('epoch')} = ${e.value({ S: read.epoch })}`, `${e.name('devs', device, 'c')} = ${e.num(own.cursor)}`];
  if (own.gap) {
    const g = own.gap;
    conditions.push(
      `${e.name('devs', device, 'g', 'f')} = ${e.num(g.from)}`,
      `${e.name('devs', device, 'g', 't')} = ${e.num(g.to)}`,
      `${e.name('devs', device, 'g', 'n')} = ${e.num(g.count)}`,
    );
  } else {
    conditions.push(`attribute_not_exists(${e.name('devs', device, 'g')})`);
  }
  const others = Object.entries(read.devices).filter(([d]) => d !== device);
  if (others.length + 1 > ACK_GUARD_MAX_DEVICES) {
    conditions.push(`${e.name('ver')} = ${e.num(read.ver)}`);
  } else {
    conditions.push(`size(${e.name('devs')}) = ${e.num(others.length + 1)}`);
    for (const [d, v] of others) conditions.push(`${e.name('devs', d, 'c')} >= ${e.num(v.cursor)}`);
  }
  if (a.upTo !== undefined) {
    const k = ackBound(read, device, a.upTo);
    if (k < a.upTo && others.length + 1 <= ACK_GUARD_MAX_DEVICES) {
      const behind = others.filter(([, v]) => v.cursor <= k).map(([d]) => `${e.name('devs', d, 'c')} <= ${e.num(k)}`);
      conditions.push(`(${behind.join(' OR ')})`);
    }
    const floor = e.name('floor');
    const rises = a.floor !== undefined && a.floor !== read.floor;
    conditions.push(read.floor >= own.cursor || rises ? `${floor} = ${e.num(read.floor)}` : `${floor} <= ${e.num(own.cursor)}`);
    set.push(`${e.name('devs', device, 'c')} = ${e.num(a.upTo)}`);
    if (rises) set.push(`${floor} = ${e.num(a.floor!)}`);
  }
  if (a.gap === null) remove.push(e.name('devs', device, 'g'));
  else if (a.gap !== undefined) set.push(`${e.name('devs', device, 'g')} = ${e.value(encodeGap(a.gap))}`);
  if (a.zero) {
    conditions.push(`${e.name('last')} = ${e.num(read.lastSeq)}`);
    set.push(`${e.name('cnt')} = ${e.num(0)}`, `${e.name('bytes')} = ${e.num(0)}`);
    for (const from of Object.keys(read.senders)) remove.push(e.name(senderCountAttr(from)), e.name(senderBytesAttr(from)));
  } else {
    if (a.countDelta) add.push(`${e.name('cnt')} ${e.num(a.countDelta)}`);
    if (a.bytesDelta) add.push(`${e.name('bytes')} ${e.num(a.bytesDelta)}`);
    senderChanges(e, a.senders ?? [], add, remove, conditions);
  }
  return e.build(set, add, remove, conditions);
}

/**
 * Whether what a node remembers of a mailbox's message items (index.ts, a read's range)
 * still describes them, seen the meta item `now` returned by a failed ack of `device`:
 * nothing in the ack's range was removed meanwhile (same epoch and devices, the device's
 * gap notice unchanged, the floor not past what the ack's own conditions allow), so the
 * ack can be computed again from `now` and those items, without a read.
 */
export function sameItems(seen: MetaValue, now: MetaValue, device: DeviceId): boolean {
  if (now.epoch !== seen.epoch || !hasDevice(now.devices, device)) return false;
  const before = Object.entries(seen.devices);
  if (before.length !== Object.keys(now.devices).length) return false;
  if (before.some(([d, v]) => !hasDevice(now.devices, d) || now.devices[d]!.cursor < v.cursor)) return false;
  const g0 = seen.devices[device]?.gap;
  const g1 = now.devices[device]!.gap;
  if ((g0 === undefined) !== (g1 === undefined) || (g0 && g1 && (g0.from !== g1.from || g0.to !== g1.to || g0.count !== g1.count))) return false;
  return now.floor <= Math.max(seen.floor, seen.devices[device]?.cursor ?? 0);
}

/**
 * Register `device` in a mailbox that has devices already. What it computes does not
 * depend on the other devices' state: its cursor comes from the head as read (a send
 * meanwhile lands above it and is delivered to it: the registration took effect first),
 * and it releases nothing, because a new device can only lower the lowest cursor
 * (rules.ts planAfterRegister). So its condition is only that the device is still absent
 * and that the mailbox has at least one device and fewer than `maxDevices` (the limit
 * stays exact); `ver` is bumped (ADD) so the writers that compute from the whole device
 * set (removal, purge, the sweeper) see it. Conditioned on `ver`, every ack on another
 * node made it fail and read again, and on a loaded machine a user's devices registering
 * on several nodes at once passed the store deadline.
 */
export function addDeviceUpdate(device: DeviceId, value: DeviceValue, maxDevices: number): MetaUpdate {
  const e = new Expr();
  const entry = e.name('devs', device);
  const devs = e.name('devs');
  return e.build(
    [`${entry} = ${e.value({ M: { c: { N: String(value.cursor) }, r: { N: String(value.registeredAt) } } })}`],
    [`${e.name('ver')} ${e.num(1)}`],
    [],
    [`attribute_not_exists(${entry})`, `size(${devs}) >= ${e.num(1)}`, `size(${devs}) < ${e.num(maxDevices)}`],
  );
}
