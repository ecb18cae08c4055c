/**
 * Key layout of the DynamoDB engine (layout 2): one table, one item collection per user.
 *
 *   pk = user      sk = "m#" + seq (16 digits)  one message, or a tombstone (a seq whose
 *                                               writer never wrote it, closed by a reader)
 *   pk = user      sk = "m#~"                   the user's metadata item: last seq, epoch,
 *                                               counters, floor, device cursors, version.
 *                                               It sorts right after the messages, so one
 *                                               Query (newest first) reads it and the
 *                                               messages after a seq together
 *   pk = user      sk = "d#" + sender id        dedupe entry: sender id -> seq, until expiry
 *   pk = "#pobox"  sk = "#layout"               the table's layout marker (`layout` = 2)
 *
 * One global secondary index, `gsi1` (gpk, gsk), holds only the metadata items
 * (gpk = "users", gsk = user): users() in key order, and the sweeper's walk. A metadata
 * item enters it once, when the user's mailbox is created; later updates change no
 * indexed attribute and write nothing to the index. Messages and dedupe entries are
 * never indexed.
 *
 * Messages, tombstones and dedupe entries carry `ttl` (epoch seconds, expiry plus a
 * grace period): DynamoDB's native TTL deletes them, for free, late (hours to days);
 * reads skip what expired themselves.
 */
import type { MessageId, Seq, UserId } from '../../core/ids.js';

export const MESSAGE_PREFIX = 'm#';
/** '~' sorts after every digit: the metadata item is the last item of the message range. */
export const META_SK = 'm#~';
export const DEDUPE_PREFIX = 'd#';
export const INDEX_NAME = 'gsi1';
export const USERS_GPK = 'users';
/** User ids start with a letter or a digit, so this partition is nobody's mailbox. */
export const LAYOUT_PK = '#pobox';
export const LAYOUT_SK = '#layout';
/** Layout 1 kept the metadata item at "#meta" and wrote every send in a transaction. */
export const LAYOUT_VERSION = 2;
export const LAYOUT1_META_SK = '#meta';

const SEQ_DIGITS = 16; // Number.MAX_SAFE_INTEGER has 16 digits

export const messageSk = (seq: Seq): string => MESSAGE_PREFIX + String(seq).padStart(SEQ_DIGITS, '0');
export const dedupeSk = (id: MessageId): string => DEDUPE_PREFIX + id;

/** The primary key of an item, as the SDK wants it. */
export function itemKey(user: UserId, sk: string): { pk: { S: string }; sk: { S: string } } {
  return { pk: { S: user }, sk: { S: sk } };
}
