import type { Body } from './bytes.js';
import type { PoboxError } from './errors.js';
import type { DeviceId, MessageId, Seq, UserId } from './ids.js';
import type { GapNotice } from './protocol.js';

// Gap notices travel in frames too, so they are defined with the protocol (browser-safe).
export type { GapNotice, GapReason } from './protocol.js';

/** A message as stored in a user's mailbox. One copy, whatever the number of devices. */
export interface StoredMessage {
  seq: Seq;
  /** The sender's id for this message, unique per recipient within retention. */
  id: MessageId;
  /** The sender, always taken from the sender's credentials. */
  from: UserId;
  /** The recipient user. */
  to: UserId;
  /** When set, only this device of the recipient is shown the message. */
  toDevice?: DeviceId;
  /** Text, or opaque bytes returned byte for byte. */
  body: Body;
  /** Size of body in bytes (UTF-8 for text), counted against the size limit and the mailbox byte quota. */
  bytes: number;
  /** Milliseconds since the epoch, from the post office clock. */
  sentAt: number;
  /** Milliseconds since the epoch; the message is never delivered at or after this. */
  expiresAt: number;
  /** The sender asked for delivery receipts. */
  receipt?: boolean;
}

/** An ephemeral message on its way to connected devices: a message with no seq, never stored, so no expiry and no receipt. */
export type EphemeralMessage = Omit<StoredMessage, 'seq' | 'expiresAt' | 'receipt'>;

export interface EphemeralResult {
  ephemeral: true;
  /** Devices it was handed to (exact, or a lower bound when a node answered too late: see AcceptedFrame). */
  reached: number;
  durable: false;
}

/** The cursor of one device: the highest seq it has acknowledged. */
export interface DeviceCursor {
  device: DeviceId;
  cursor: Seq;
  registeredAt: number;
}

export interface MailboxStats {
  user: UserId;
  /** Changes when a mailbox is recreated from nothing; seqs of another epoch mean nothing. */
  epoch: string;
  /** The highest seq ever assigned in this epoch (0 when none). */
  lastSeq: Seq;
  pending: number;
  pendingBytes: number;
  /** Age in ms of the oldest stored message, or null for an empty mailbox. */
  oldestAgeMs: number | null;
  devices: DeviceCursor[];
}

/** One page of a device's view of the mailbox. */
export interface ReadPage {
  epoch: string;
  messages: StoredMessage[];
  /** Continue after this seq to get the next page (covers skipped messages too). */
  nextAfter: Seq;
  /** True when more messages may be waiting after nextAfter. */
  more: boolean;
  /** The highest seq assigned so far, for the caller to know how far behind it is. */
  lastSeq: Seq;
  /**
   * The device's stored gap notice: messages removed from the mailbox (swept after they
   * expired, purged) while they were above its cursor. Kept with the device's cursor, the
   * same on every page, until an ack reaches `to`.
   */
  gap?: GapNotice;
  /**
   * Seqs of this page's range (after the device's cursor and `afterSeq`, up to
   * `nextAfter`), in order, of messages for this device that expired before it was shown
   * them: still stored (not yet swept), never returned. Absent when none.
   */
  expired?: Seq[];
  /**
   * The device's durable cursor when the page was read: a session starts with one read
   * (its welcome needs the epoch, the cursor and the last seq), not a stats call and a read.
   */
  cursor: Seq;
}

export interface SendResult {
  seq: Seq;
  /** True when this id was already stored: nothing new was written. */
  duplicate: boolean;
  /** Always true: a send is acknowledged only after it is on disk or acknowledged by the database. */
  durable: true;
  epoch: string;
}

/** One recipient's part of a group send: stored (or a duplicate of what was), or refused for that recipient alone. */
export type RecipientOutcome = { to: UserId; ok: true; seq: Seq; duplicate: boolean; epoch: string } | { to: UserId; ok: false; error: PoboxError };

export interface GroupSendResult {
  /** Every stored result is durable (the answer waits for the commit). */
  durable: true;
  /** One per recipient, in the order they were given. */
  results: RecipientOutcome[];
}

export interface AckResult {
  cursor: Seq;
  /** Messages this ack allowed the store to delete (acked by every device). */
  deleted: number;
}

/** Where a newly registered device starts reading. */
export type DeviceStart = 'auto' | 'oldest' | 'head';

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
