/**
 * Key layout of the DynamoDB engine: one table, one item collection per user.
 *
 *   pk = user   sk = "#meta"                 the user's metadata item (last seq, epoch,
 *                                            count, bytes, floor, device cursors, version)
 *   pk = user   sk = "m#" + seq (16 digits)  one message; zero-padded so string order is
 *                                            seq order and a read is one Query range
 *   pk = user   sk = "d#" + sender id        dedupe entry: sender id -> seq, until expiry
 *   pk = user   sk = "e#" + seq              expiry pointer, written only when an id is sent
 *                                            again after its dedupe entry expired but before
 *                                            the sweeper removed the old message
 *
 * One global secondary index, `gsi1` (gpk, gsk), is sparse: only items that carry gpk
 * appear in it.
 *
 *   dedupe and    gpk = "x#" + shard   gsk = expiresAt (15 digits)   -> the sweeper's
 *   pointer items
 *                 time-ordered walk; every message has a dedupe item with the same
 *                 expiry and seq, so the index finds expired messages without a scan
 *                 and without an index write per message.
 *   meta items    gpk = "users"        gsk = user                    -> users() in key
 *                 order. Written once per user: later meta updates change no projected
 *                 attribute, so they cost no index write.
 *
 * Message and dedupe items carry `ttl` (epoch seconds, expiry plus a grace period):
 * DynamoDB's own TTL is the backstop that frees storage when no pobox sweeper runs; it
 * deletes late (hours to days), so reads also skip expired items themselves.
 */
import type { MessageId, Seq, UserId } from '../../core/ids.js';

export const META_SK = '#meta';
export const MESSAGE_PREFIX = 'm#';
export const DEDUPE_PREFIX = 'd#';
export const POINTER_PREFIX = 'e#';
export const INDEX_NAME = 'gsi1';
export const USERS_GPK = 'users';
export const EXPIRY_GPK_PREFIX = 'x#';

const SEQ_DIGITS = 16; // Number.MAX_SAFE_INTEGER has 16 digits
const TIME_DIGITS = 15; // ms timestamps up to year 33658

export const messageSk = (seq: Seq): string => MESSAGE_PREFIX + String(seq).padStart(SEQ_DIGITS, '0');
export const dedupeSk = (id: MessageId): string => DEDUPE_PREFIX + id;
export const pointerSk = (seq: Seq): string => POINTER_PREFIX + String(seq).padStart(SEQ_DIGITS, '0');
export const timeKey = (ms: number): string => String(Math.max(0, Math.floor(ms))).padStart(TIME_DIGITS, '0');

/** Which expiry shard of the index a user's dedupe items live in (FNV-1a of the user id). */
export function expiryShard(user: UserId, shards: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < user.length; i++) {
    h ^= user.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % shards;
}

export const expiryGpk = (shard: number): string => EXPIRY_GPK_PREFIX + String(shard);

/** The primary key of an item, as the SDK wants it. */
export function itemKey(user: UserId, sk: string): { pk: { S: string }; sk: { S: string } } {
  return { pk: { S: user }, sk: { S: sk } };
}
