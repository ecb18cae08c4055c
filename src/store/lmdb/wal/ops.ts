/**
 * What the engine writes into the log: the EFFECT of each mutation, not the request.
 * A send is logged with the seq it was given (and the mailbox epoch when the send
 * created the mailbox), so replay never re-decides dedupe or quotas; an ack, a device
 * registration or removal is logged with its arguments and replayed through the same
 * rules, over the same state, in the same order, so it deletes the same messages.
 * Tuples rather than objects keep field names out of every record.
 */
import { Packr } from 'msgpackr';
import type { Body } from '../../../core/bytes.js';
import type { DeviceId, MessageId, Seq, UserId } from '../../../core/ids.js';
import type { GapNotice } from '../../../core/types.js';
import type { MessageValue } from '../keys.js';

export const OP_APPEND = 1;
export const OP_ACK = 2;
export const OP_REGISTER = 3;
export const OP_REMOVE = 4;
export const OP_RESTORE = 5;

/** One stored message: [to, seq, epochIfCreated, id, from, body, bytes, sentAt, expiresAt, toDevice, receipt]. */
export type AppendEntry = [UserId, Seq, string | null, MessageId, UserId, Body, number, number, number, DeviceId | null, 0 | 1];
/** [user, device, upTo] or, for an admin's skip (contract AckOptions.skip), [user, device, upTo, 1]. */
export type AckOp = [UserId, DeviceId, Seq] | [UserId, DeviceId, Seq, 1];
/** [user, device, cursor, registeredAt, epochIfCreated] */
export type RegisterOp = [UserId, DeviceId, Seq, number, string | null];
export type RemoveOp = [UserId, DeviceId];
/**
 * An import into an empty mailbox, as one record (all or nothing): [user, epoch, lastSeq,
 * devices as [device, cursor, registeredAt, gap notice or null], messages as append
 * entries in seq order].
 */
export type RestoreOp = [UserId, string, Seq, Array<[DeviceId, Seq, number, GapNotice | null]>, AppendEntry[]];

// No shared structures: every record must decode on its own, after any restart. A body of
// bytes (a bin value) is copied out of the segment it was read from, which is not kept.
const packr = new Packr({ useRecords: false, moreTypes: false, copyBuffers: true });

export const encodeOp = (op: unknown): Buffer => packr.pack(op);
export const decodeOp = <T>(payload: Uint8Array): T => packr.unpack(payload) as T;

export function entryValue(e: AppendEntry): MessageValue {
  const v: MessageValue = { id: e[3], from: e[4], body: e[5], bytes: e[6], sentAt: e[7], expiresAt: e[8] };
  if (e[9] !== null) v.toDevice = e[9];
  if (e[10] === 1) v.receipt = true;
  return v;
}
