/**
 * Items <-> pobox values. Attribute names are short because DynamoDB bills item size,
 * names included. The size estimate is conservative (numbers count as their maximum of
 * 21 bytes), so an item we let through never hits DynamoDB's 400 KB limit.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { DeviceId, MessageId, Seq, UserId } from '../../core/ids.js';
import type { GapNotice, GapReason, StoredMessage } from '../../core/types.js';
import type { DeviceMap } from '../rules.js';
import { dedupeSk, messageSk, META_SK, USERS_GPK } from './keys.js';

export type Item = Record<string, AttributeValue>;

/** DynamoDB's hard item limit. */
export const MAX_ITEM_BYTES = 400 * 1024;
/** Room kept for every attribute but the body (ids are at most 128 + 64 + 64 characters). */
export const ITEM_OVERHEAD_BYTES = 2048;
/** Largest body we accept: what fits in one item next to everything else. */
export const MAX_BODY_BYTES = MAX_ITEM_BYTES - ITEM_OVERHEAD_BYTES;

export interface MetaValue {
  epoch: string;
  lastSeq: Seq;
  count: number;
  bytes: number;
  /** Every seq <= floor is released (acked by all devices, purged, or expired and swept). */
  floor: Seq;
  devices: DeviceMap;
  /** Devices being removed: no new message may be addressed to them (removal waits for those in flight). */
  leaving: DeviceId[];
  /** Version of the device state (devs, floor): every write but a send is conditioned on it and bumps it. */
  ver: number;
  /** Bytes ever reserved (cumulative); the message at `lastSeq` carries this as its `cb`. */
  totalBytes: number;
  /** Wall-clock ms of the latest seq reservation (readers' lease on holes). */
  reservedAt: number;
  /** At or before the earliest expiry of any live message (absent: none known); the sweeper's filter. */
  firstExpiry?: number;
  /**
   * Fair quotas: what each sender holds in this mailbox, as two top-level number
   * attributes per sender (`sc#<from>`, `sb#<from>`) so a reservation can ADD to them.
   * Only senders holding something have them.
   */
  senders: Record<UserId, SenderHeld>;
}

export interface SenderHeld {
  count: number;
  bytes: number;
}

/** The meta item's attribute names of one sender's counters. */
export const senderCountAttr = (from: UserId): string => `sc#${from}`;
export const senderBytesAttr = (from: UserId): string => `sb#${from}`;

/** What a message item holds besides its key; `to` is the partition key. */
export interface MessageRecord extends StoredMessage {}

export interface DedupeRecord {
  id: MessageId;
  seq: Seq;
  expiresAt: number;
}

const encoder = new TextEncoder();
const n = (v: number): AttributeValue => ({ N: String(v) });
const s = (v: string): AttributeValue => ({ S: v });

function num(item: Item, name: string): number {
  const v = item[name];
  if (!v || v.N === undefined) throw new Error(`item attribute ${name} is missing or not a number`);
  return Number(v.N);
}
function str(item: Item, name: string): string {
  const v = item[name];
  if (!v || v.S === undefined) throw new Error(`item attribute ${name} is missing or not a string`);
  return v.S;
}

/** Seconds since the epoch for the native TTL attribute. */
export const ttlSeconds = (expiresAt: number, graceSeconds: number): number => Math.ceil(expiresAt / 1000) + graceSeconds;

/**
 * `cumulative` is the message's `cb`: the bytes reserved for every seq up to and including
 * this one. A reader that closes a hole left by a writer that died computes the hole's
 * bytes from its neighbours' `cb` and gives them back to the quota exactly.
 */
export function encodeMessage(m: StoredMessage, graceSeconds: number, cumulative?: number): Item {
  const item: Item = {
    pk: s(m.to),
    sk: s(messageSk(m.seq)),
    seq: n(m.seq),
    id: s(m.id),
    f: s(m.from),
    // Bytes as a B attribute, byte for byte; text as S.
    body: typeof m.body === 'string' ? s(m.body) : { B: m.body },
    b: n(m.bytes),
    at: n(m.sentAt),
    exp: n(m.expiresAt),
    ttl: n(ttlSeconds(m.expiresAt, graceSeconds)),
  };
  if (m.toDevice !== undefined) item.dev = s(m.toDevice);
  if (m.receipt) item.rc = { BOOL: true };
  if (cumulative !== undefined) item.cb = n(cumulative);
  return item;
}

/** What a reader knows of any item at a message key: a message or a tombstone. */
export interface SeqRecord {
  seq: Seq;
  tomb: boolean;
  /** Bytes reserved for this seq (a message's body bytes; a tombstone's closed reservation, if known). */
  bytes: number;
  /** Cumulative reserved bytes through this seq, when known (layout 2 items). */
  cb?: number;
  /** The device a message is addressed to, if any. */
  toDevice?: DeviceId;
  /** A message's sender (fair quotas). */
  from?: UserId;
}

export function seqRecord(item: Item): SeqRecord {
  const r: SeqRecord = { seq: num(item, 'seq'), tomb: item.tomb?.BOOL === true, bytes: item.b?.N !== undefined ? Number(item.b.N) : 0 };
  if (item.cb?.N !== undefined) r.cb = Number(item.cb.N);
  if (item.dev?.S !== undefined) r.toDevice = item.dev.S;
  if (item.f?.S !== undefined) r.from = item.f.S;
  return r;
}

export const isTombstone = (item: Item): boolean => item.tomb?.BOOL === true;

/**
 * A tombstone: the seq's writer never wrote it (it died, or stalled past the lease), so a
 * reader closed it. A late writer's conditional put then fails and it takes a new seq.
 */
export function encodeTombstone(user: UserId, seq: Seq, ttlAt: number, bytes: number, cumulative?: number): Item {
  const item: Item = { pk: s(user), sk: s(messageSk(seq)), seq: n(seq), tomb: { BOOL: true }, b: n(bytes), ttl: n(ttlAt) };
  if (cumulative !== undefined) item.cb = n(cumulative);
  return item;
}

export function decodeMessage(item: Item): StoredMessage {
  const m: StoredMessage = {
    seq: num(item, 'seq'),
    id: str(item, 'id'),
    from: str(item, 'f'),
    to: str(item, 'pk'),
    body: item.body?.B ?? str(item, 'body'),
    bytes: num(item, 'b'),
    sentAt: num(item, 'at'),
    expiresAt: num(item, 'exp'),
  };
  const dev = item.dev?.S;
  if (dev !== undefined) m.toDevice = dev;
  if (item.rc?.BOOL) m.receipt = true;
  return m;
}

/** A dedupe entry: the sender's id -> the seq it got, until the message expires (native TTL deletes it). */
export function encodeDedupe(user: UserId, d: DedupeRecord, graceSeconds: number): Item {
  return {
    pk: s(user),
    sk: s(dedupeSk(d.id)),
    id: s(d.id),
    seq: n(d.seq),
    exp: n(d.expiresAt),
    ttl: n(ttlSeconds(d.expiresAt, graceSeconds)),
  };
}

export function decodeDedupe(item: Item): DedupeRecord {
  return { id: str(item, 'id'), seq: num(item, 'seq'), expiresAt: num(item, 'exp') };
}

/** A new metadata item (the first device of a user with no mailbox yet, or an import). */
export function encodeMeta(user: UserId, m: MetaValue): Item {
  const devices: Record<string, AttributeValue> = {};
  for (const [device, d] of Object.entries(m.devices)) {
    devices[device] = { M: { c: n(d.cursor), r: n(d.registeredAt), ...(d.gap ? { g: encodeGap(d.gap) } : {}) } };
  }
  return {
    pk: s(user),
    sk: s(META_SK),
    gpk: s(USERS_GPK),
    gsk: s(user),
    epoch: s(m.epoch),
    last: n(m.lastSeq),
    cnt: n(m.count),
    bytes: n(m.bytes),
    floor: n(m.floor),
    devs: { M: devices },
    ver: n(m.ver),
    tb: n(m.totalBytes),
    rat: n(m.reservedAt),
    ...(m.firstExpiry !== undefined ? { fx: n(m.firstExpiry) } : {}),
    ...senderAttributes(m.senders),
  };
}

/** A device's gap notice, inside its entry of `devs`: `g` = {f: from, t: to, n: count, r: [reasons]} (about 40 bytes). */
export function encodeGap(g: GapNotice): AttributeValue {
  return { M: { f: n(g.from), t: n(g.to), n: n(g.count), r: { L: g.reasons.map((r) => s(r)) } } };
}

function decodeGap(m: Item): GapNotice {
  const reasons = (m.r?.L ?? []).map((v) => v.S).filter((r): r is GapReason => r === 'expired' || r === 'purged');
  return { from: num(m, 'f'), to: num(m, 't'), count: num(m, 'n'), reasons };
}

function senderAttributes(senders: Record<UserId, SenderHeld>): Item {
  const out: Item = {};
  for (const [from, h] of Object.entries(senders)) {
    if (h.count <= 0) continue;
    out[senderCountAttr(from)] = n(h.count);
    out[senderBytesAttr(from)] = n(h.bytes);
  }
  return out;
}

export function decodeMeta(item: Item): MetaValue {
  const devices: DeviceMap = Object.create(null) as DeviceMap;
  const leaving: DeviceId[] = [];
  for (const [device, v] of Object.entries(item.devs?.M ?? {})) {
    const d = v.M ?? {};
    devices[device as DeviceId] = { cursor: num(d, 'c'), registeredAt: num(d, 'r') };
    if (d.g?.M !== undefined) devices[device as DeviceId]!.gap = decodeGap(d.g.M);
    if (d.l?.BOOL) leaving.push(device);
  }
  const senders: Record<UserId, SenderHeld> = Object.create(null) as Record<UserId, SenderHeld>;
  for (const [name, v] of Object.entries(item)) {
    if (!name.startsWith('sc#') || v.N === undefined) continue;
    const from = name.slice(3);
    senders[from] = { count: Number(v.N), bytes: Number(item[senderBytesAttr(from)]?.N ?? 0) };
  }
  const m: MetaValue = {
    senders,
    epoch: str(item, 'epoch'),
    lastSeq: item.last ? num(item, 'last') : 0,
    count: item.cnt ? num(item, 'cnt') : 0,
    bytes: item.bytes ? num(item, 'bytes') : 0,
    floor: item.floor ? num(item, 'floor') : 0,
    devices,
    leaving,
    ver: item.ver ? num(item, 'ver') : 0,
    totalBytes: item.tb ? num(item, 'tb') : 0,
    reservedAt: item.rat ? num(item, 'rat') : 0,
  };
  if (item.fx?.N !== undefined) m.firstExpiry = Number(item.fx.N);
  return m;
}

/** A conservative size of an item as DynamoDB bills and limits it. */
export function itemSize(item: Item): number {
  let size = 0;
  for (const [name, v] of Object.entries(item)) size += encoder.encode(name).length + valueSize(v);
  return size;
}

function valueSize(v: AttributeValue): number {
  if (v.S !== undefined) return encoder.encode(v.S).length;
  if (v.B !== undefined) return v.B.length;
  if (v.N !== undefined) return 21;
  if (v.BOOL !== undefined || v.NULL !== undefined) return 1;
  if (v.M !== undefined) return 3 + itemSize(v.M) + Object.keys(v.M).length;
  if (v.L !== undefined) return 3 + v.L.reduce((a, x) => a + 1 + valueSize(x), 0);
  return 64;
}
