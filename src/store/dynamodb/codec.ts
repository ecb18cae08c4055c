/**
 * Items <-> pobox values. Attribute names are short because DynamoDB bills item size,
 * names included. The size estimate is conservative (numbers count as their maximum of
 * 21 bytes), so an item we let through never hits DynamoDB's 400 KB limit.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { DeviceId, MessageId, Seq, UserId } from '../../core/ids.js';
import type { StoredMessage } from '../../core/types.js';
import type { DeviceMap } from '../rules.js';
import { dedupeSk, expiryGpk, messageSk, META_SK, timeKey, USERS_GPK } from './keys.js';

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
  /** Every message with seq <= floor is released (acked by all devices, or purged). */
  floor: Seq;
  devices: DeviceMap;
  /** Version of the device state (devs, floor): every write but a send is conditioned on it and bumps it. */
  ver: number;
  /**
   * Fair quotas: what each sender holds in this mailbox, as two top-level number
   * attributes per sender (`sc#<from>`, `sb#<from>`) so a send can ADD to them in its
   * meta update. Only senders holding something have them.
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

export function encodeMessage(m: StoredMessage, graceSeconds: number): Item {
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

/** A dedupe item, or (with `sk` = pointerSk(seq)) an expiry pointer of the same shape. */
export function encodeDedupe(user: UserId, d: DedupeRecord, shard: number, graceSeconds: number, sk = dedupeSk(d.id)): Item {
  return {
    pk: s(user),
    sk: s(sk),
    id: s(d.id),
    seq: n(d.seq),
    exp: n(d.expiresAt),
    ttl: n(ttlSeconds(d.expiresAt, graceSeconds)),
    gpk: s(expiryGpk(shard)),
    gsk: s(timeKey(d.expiresAt)),
  };
}

export function decodeDedupe(item: Item): DedupeRecord {
  return { id: str(item, 'id'), seq: num(item, 'seq'), expiresAt: num(item, 'exp') };
}

export function encodeMeta(user: UserId, m: MetaValue): Item {
  const devices: Record<string, AttributeValue> = {};
  for (const [device, d] of Object.entries(m.devices)) {
    devices[device] = { M: { c: n(d.cursor), r: n(d.registeredAt) } };
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
    ...senderAttributes(m.senders),
  };
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
  for (const [device, v] of Object.entries(item.devs?.M ?? {})) {
    const d = v.M ?? {};
    devices[device as DeviceId] = { cursor: num(d, 'c'), registeredAt: num(d, 'r') };
  }
  const senders: Record<UserId, SenderHeld> = Object.create(null) as Record<UserId, SenderHeld>;
  for (const [name, v] of Object.entries(item)) {
    if (!name.startsWith('sc#') || v.N === undefined) continue;
    const from = name.slice(3);
    senders[from] = { count: Number(v.N), bytes: Number(item[senderBytesAttr(from)]?.N ?? 0) };
  }
  return {
    senders,
    epoch: str(item, 'epoch'),
    lastSeq: num(item, 'last'),
    count: num(item, 'cnt'),
    bytes: num(item, 'bytes'),
    floor: item.floor ? num(item, 'floor') : 0,
    devices,
    ver: num(item, 'ver'),
  };
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
