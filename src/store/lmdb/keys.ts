/**
 * Key layout of the embedded engine. Keys are lmdb-js ordered-binary arrays, so tuples
 * sort element by element and one user's entries are contiguous:
 *
 *   messages  [user, seq]              -> MessageValue   (a read is one key range)
 *   meta      user                     -> MetaValue      (next seq, epoch, counts, cursors)
 *   dedupe    [user, senderId]         -> DedupeValue    (kept for the message's retention)
 *   expiry    [expiresAt, user, seq]   -> senderId       (the sweeper walks this in time order)
 *
 * A message deleted by an ack keeps its expiry entry: the sweeper uses it to drop the
 * dedupe entry when the retention window ends, so a resend is recognised until then.
 */
import type { MessageId, Seq, UserId, DeviceId } from '../../core/ids.js';
import type { DeviceMap } from '../rules.js';

export const MAX_SEQ = Number.MAX_SAFE_INTEGER;

export type MessageKey = [UserId, Seq];
export type DedupeKey = [UserId, MessageId];
export type ExpiryKey = [number, UserId, Seq];

export interface MessageValue {
  id: MessageId;
  from: UserId;
  toDevice?: DeviceId;
  body: string;
  bytes: number;
  sentAt: number;
  expiresAt: number;
  receipt?: boolean;
}

export interface MetaValue {
  epoch: string;
  lastSeq: Seq;
  count: number;
  bytes: number;
  devices: DeviceMap;
}

export interface DedupeValue {
  seq: Seq;
  expiresAt: number;
}

export const messageKey = (user: UserId, seq: Seq): MessageKey => [user, seq];
export const dedupeKey = (user: UserId, id: MessageId): DedupeKey => [user, id];
export const expiryKey = (expiresAt: number, user: UserId, seq: Seq): ExpiryKey => [expiresAt, user, seq];

/** The key range holding a user's messages with lo < seq <= hi. */
export function messageRange(user: UserId, lo: Seq, hi: Seq = MAX_SEQ): { start: MessageKey; end: MessageKey } {
  return { start: [user, lo + 1], end: [user, Math.min(hi, MAX_SEQ - 1) + 1] };
}
