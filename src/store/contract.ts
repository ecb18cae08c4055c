/**
 * The one contract every storage engine implements. An engine owns its connections and
 * its key layout; nothing here passes a transaction or a client across the boundary.
 *
 * The semantics that must be atomic with storage live behind this contract (seq
 * assignment, dedupe, quotas, cursor moves and the deletes they allow); validation,
 * clocks, batching and events live in the post office above it.
 */
import type { PoboxError } from '../core/errors.js';
import type { DeviceId, MessageId, Seq, UserId } from '../core/ids.js';
import type { DeviceCursor, DeviceStart, GapNotice, MailboxStats, ReadPage, StoredMessage } from '../core/types.js';

/**
 * A validated message ready to store; the engine assigns its seq. `senderQuotaExempt`
 * (a backend key configured so, or a receipt) skips the per-sender check; the message
 * still counts toward its sender's share. It is not stored.
 */
export type AppendItem = Omit<StoredMessage, 'seq'> & { senderQuotaExempt?: boolean };

export type AppendOutcome = { ok: true; seq: Seq; duplicate: boolean; epoch: string } | { ok: false; error: PoboxError };

/** Quotas an append must respect, checked atomically with the write. */
export interface AppendLimits {
  maxMailboxMessages: number;
  maxMailboxBytes: number;
  /**
   * Fair quotas: most messages / bytes one sender may have stored in one mailbox
   * (SENDER_QUOTA past them). Absent: no per-sender check. Engines count every sender's
   * messages either way (up on append, down when a message leaves the mailbox by ack,
   * expiry, purge or device removal), atomically with those changes.
   */
  maxSenderMessages?: number;
  maxSenderBytes?: number;
}

export interface ReadRequest {
  user: UserId;
  device: DeviceId;
  /** Return messages with seq greater than this (and greater than the device's cursor). */
  afterSeq: Seq;
  limit: number;
  /** Messages with expiresAt <= now are never returned. */
  now: number;
}

export interface AckOptions {
  /**
   * An admin's skip, not a delivery: the messages for this device still stored between its
   * cursor and upToSeq (expired ones not swept yet included) are added to its gap notice
   * (rules.ts gapAfterSkip, reason 'purged') in the same write, instead of the ack
   * removing the notice.
   */
  skip?: boolean;
}

export interface AckOutcome {
  cursor: Seq;
  /** False when upToSeq was at or below the cursor already (nothing changed). */
  moved: boolean;
  deleted: number;
  /** Bytes freed by the deletes, for the pending-bytes gauge. */
  deletedBytes: number;
}

export interface RegisterOutcome extends DeviceCursor {
  /** False when the device already existed (its cursor is unchanged). */
  created: boolean;
  /**
   * Messages deleted because a first device started at the head (see planAfterRegister
   * in rules.ts); absent or 0 otherwise.
   */
  deleted?: number;
  deletedBytes?: number;
}

export interface RemoveOutcome {
  removed: boolean;
  deleted: number;
  deletedBytes: number;
}

export interface SweepOutcome {
  /** Messages deleted because they expired. */
  expired: number;
  expiredBytes: number;
  /** Index entries (dedupe and expiry) cleaned. */
  cleaned: number;
  /** True when the pass stopped at its limit with more left to do. */
  more: boolean;
}

export interface PurgeOutcome {
  deleted: number;
  deletedBytes: number;
}

/** One page of a mailbox export: pending messages in seq order, whatever device they are for. */
export interface ExportPage {
  messages: StoredMessage[];
  /** Continue after this seq for the next page. */
  nextAfter: Seq;
  /** True when more messages may follow (up to the `upTo` asked for). */
  more: boolean;
}

/**
 * A whole mailbox to restore (an import): the epoch and last seq it had, its devices
 * with their cursors, and its pending messages in ascending seq order, each at most
 * `lastSeq` and addressed to `user`. Checked by the post office before any engine sees it.
 */
export interface MailboxSnapshot {
  user: UserId;
  epoch: string;
  lastSeq: Seq;
  devices: SnapshotDevice[];
  messages: StoredMessage[];
}

/** A device of a snapshot: its cursor, and its gap notice when it has one (kept beside the cursor). */
export type SnapshotDevice = DeviceCursor & { gap?: GapNotice };

export interface RestoreOutcome {
  devices: number;
  messages: number;
  bytes: number;
}

/**
 * Counters an engine keeps of its own work, so tests can check how much a read touched
 * without timing it. `keysRead` counts every stored entry (or database item) examined.
 */
export interface StoreCounters {
  keysRead: number;
  keysWritten: number;
  keysDeleted: number;
}

/** What a metered backing service reported for this store's requests (DynamoDB: ReturnConsumedCapacity). */
export interface StoreCapacity {
  readUnits: number;
  writeUnits: number;
  requests: number;
  /** Units of the conditional writes refused by their condition, which the service bills but reports in no response (counted by the engine). */
  failedWriteUnits?: number;
}

/** Where engines really differ, they say so here; callers check flags, never names. */
export interface StoreCapabilities {
  /** Data lives in this process's files; admin tools may open it directly when stopped. */
  embedded: boolean;
  /** Largest stored message the engine accepts, in bytes of body, if it has a hard limit. */
  maxBodyBytes?: number;
}

export interface MailboxStore {
  /** A short name for logs and metric labels. */
  readonly engine: string;
  readonly capabilities: StoreCapabilities;

  /**
   * Store a batch. Each item gets its own outcome; one item's quota or dedupe result
   * never fails another. Resolves only when every stored item is durable.
   */
  append(items: readonly AppendItem[], limits: AppendLimits): Promise<AppendOutcome[]>;

  /**
   * A page of one device's view: seq > max(afterSeq, cursor), for the user or this device,
   * unexpired, with the device's cursor as read. The expired ones it passed are listed in
   * `expired`; the device's stored gap notice, if any, is in `gap`. NOT_FOUND for an
   * unknown device.
   */
  read(req: ReadRequest): Promise<ReadPage>;

  /**
   * `read`, answering `undefined` for an unknown device instead of NOT_FOUND: a device's
   * first read (PostOffice.readOrRegister) registers it on that answer. An error built
   * per first connection (its stack captured) was measurable in a reconnect storm.
   */
  readIfRegistered(req: ReadRequest): Promise<ReadPage | undefined>;

  /**
   * Move the device's cursor to upToSeq (never backwards) and delete what every device
   * has now acked; a gap notice whose `to` the cursor reaches is removed in the same
   * write, also when the cursor is past it already (an admin's skip left it). NOT_FOUND
   * for an unknown device, BAD_REQUEST beyond the last seq.
   */
  ack(user: UserId, device: DeviceId, upToSeq: Seq, opts?: AckOptions): Promise<AckOutcome>;

  registerDevice(user: UserId, device: DeviceId, start: DeviceStart, now: number, maxDevices: number): Promise<RegisterOutcome>;
  removeDevice(user: UserId, device: DeviceId): Promise<RemoveOutcome>;
  listDevices(user: UserId): Promise<DeviceCursor[]>;

  stats(user: UserId, now: number): Promise<MailboxStats>;

  /**
   * Delete all of a user's stored messages. Devices, cursors, seqs and dedupe entries are
   * kept. Each device below a deleted message that was for it gets it added to its gap
   * notice (rules.ts gapsAfterRemoval, reason 'purged') in the same write.
   */
  purge(user: UserId): Promise<PurgeOutcome>;

  /**
   * Delete up to `max` messages (and their index entries) that expired at or before `now`,
   * adding them to the gap notice of each device still below them (reason 'expired') in
   * the same write.
   */
  sweep(now: number, max: number): Promise<SweepOutcome>;

  /**
   * Export: up to `limit` of the user's stored messages with afterSeq < seq <= upTo that
   * some device they are for has not acked, in seq order, whoever they are addressed to.
   * Expired ones not swept yet are included (as `stats` counts them): an import keeps
   * them, and its sweeper removes them and leaves the same gap notices as the source
   * would. An unknown user has none.
   */
  exportPage(user: UserId, afterSeq: Seq, upTo: Seq, limit: number): Promise<ExportPage>;

  /**
   * Import: write a snapshot into an empty mailbox (one that never stored a message and has
   * no device), keeping its epoch, seqs, ids, cursors and gap notices: later sends continue after
   * `lastSeq`, a resend of an imported id is a duplicate, and the senders' shares (fair
   * quotas) count the imported messages. CONFLICT when the mailbox is not empty. All or
   * nothing: no reader sees a part of it, and a failed restore leaves the mailbox empty.
   */
  restore(snapshot: MailboxSnapshot): Promise<RestoreOutcome>;

  /** Every user id with a mailbox, in key order, for admin tools. */
  users(opts?: { after?: UserId; limit?: number }): Promise<UserId[]>;

  counters(): StoreCounters;
  close(): Promise<void>;

  /**
   * Optional: be told when work the engine does in the background, outside any call,
   * fails (e.g. DynamoDB deletes left for the sweeper), so it is logged and counted.
   */
  onBackgroundFailure?(listener: (err: unknown) => void): void;

  /** Optional: capacity units and requests the backing service billed so far (exported on /metrics). */
  capacity?(): StoreCapacity;
}

/** Builds an engine. The conformance suite takes one of these and nothing else. */
export type StoreFactory = () => Promise<MailboxStore>;

export type { MessageId };
