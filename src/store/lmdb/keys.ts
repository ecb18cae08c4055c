/**
 * Key layout of the embedded engine. Keys are lmdb-js ordered-binary arrays, so tuples
 * sort element by element. Everything a user owns lives in ONE B-tree under the user's
 * id, tagged by kind, so one user's entries are contiguous:
 *
 *   mailboxes  [user, 0]                 -> MetaValue     (last seq, epoch, counts, cursors)
 *   mailboxes  [user, 1, seq]            -> MessageValue  (a read is one key range)
 *   mailboxes  [user, 2, senderId]       -> DedupeValue   (kept for the message's retention)
 *   mailboxes  [user, 4, from]           -> SenderValue   (fair quotas: what `from` holds here)
 *   expiry     [expiresAt, user, seq]    -> messageId     (the sweeper walks this in time order)
 *   expiry     [expiresAt, user, -seq]   -> [[id, seq]...] (dedupe entries of messages never stored)
 *
 * Why one tree and not one per kind: a send writes the user's meta, a message and a
 * dedupe entry. In separate trees those are three random leaf pages per message that
 * LMDB's copy-on-write commit must rewrite; under one user prefix they usually share a
 * page, which measured about twice the durable send rate with recipients spread over
 * 100,000 users. The expiry index is keyed by time, so its writes append at the end.
 *
 * A message deleted by an ack keeps its expiry entry: the sweeper uses it to drop the
 * dedupe entry when the retention window ends, so a resend is recognised until then.
 * Messages acked before the write-ahead log's apply reached them never reach the B-tree;
 * their dedupe entries do, and one expiry entry names a group of them (a user's, expiring
 * within a second of each other: DEDUPE_GROUP), keyed by the group's last expiry and its
 * first seq negated (never a stored message's key). A live recipient's message then costs
 * the apply one write instead of two. The dedupe value carries its own expiry and a send
 * checks it, so a resend is recognised exactly until then, however late the sweeper
 * removes the entry.
 */
import type { MessageId, Seq, UserId } from '../../core/ids.js';
import type { StoredMessage } from '../../core/types.js';
import type { DeviceMap } from '../rules.js';

export const MAX_SEQ = Number.MAX_SAFE_INTEGER;

const META = 0;
const MESSAGE = 1;
const DEDUPE = 2;
const SENDER = 4;
/** Sorts after every entry of a user and before the next user's (a seek key, never stored). */
const PAST_USER = 5;

export type MailboxKey = [UserId, number] | [UserId, number, Seq | MessageId | UserId];
export type ExpiryKey = [number, UserId, Seq];

/** A stored message under its user's key, which holds `to` and `seq`; bytes are msgpack bin, stored and returned byte for byte. */
export type MessageValue = Omit<StoredMessage, 'seq' | 'to'>;

export interface MetaValue {
  epoch: string;
  lastSeq: Seq;
  count: number;
  bytes: number;
  devices: DeviceMap;
}

/** An expiry entry: one stored message's id, or the dedupe entries (id, seq) of messages never stored. */
export type ExpiryValue = MessageId | Array<[MessageId, Seq]>;

/** Bounds of one expiry entry for a group of dedupe entries. */
export const DEDUPE_GROUP = { spanMs: 1000, maxIds: 64, maxIdChars: 1500 };

export interface DedupeValue {
  seq: Seq;
  expiresAt: number;
}

/** Messages and bytes one sender has stored in a mailbox; no entry means none. */
export interface SenderValue {
  count: number;
  bytes: number;
}

export const metaKey = (user: UserId): MailboxKey => [user, META];
export const messageKey = (user: UserId, seq: Seq): MailboxKey => [user, MESSAGE, seq];
export const dedupeKey = (user: UserId, id: MessageId): MailboxKey => [user, DEDUPE, id];
export const expiryKey = (expiresAt: number, user: UserId, seq: Seq): ExpiryKey => [expiresAt, user, seq];
export const senderKey = (user: UserId, from: UserId): MailboxKey => [user, SENDER, from];
/** The key range holding every sender entry of a user. */
export const senderRange = (user: UserId): { start: MailboxKey; end: MailboxKey } => ({ start: [user, SENDER], end: [user, SENDER + 1] });
/** The first key past everything `user` owns: where the next user's entries begin. */
export const pastUserKey = (user: UserId): MailboxKey => [user, PAST_USER];

/** The key range holding a user's messages with lo < seq <= hi. */
export function messageRange(user: UserId, lo: Seq, hi: Seq = MAX_SEQ): { start: MailboxKey; end: MailboxKey } {
  return { start: [user, MESSAGE, lo + 1], end: [user, MESSAGE, Math.min(hi, MAX_SEQ - 1) + 1] };
}

/** The seq of a message key returned by a messageRange iteration. */
export function seqOf(key: MailboxKey): Seq {
  return key[2] as Seq;
}
