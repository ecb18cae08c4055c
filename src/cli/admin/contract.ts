/**
 * What the admin commands act on: a running server over HTTP (admin API key), or, for
 * the embedded engine, the data dir of a stopped server opened directly. Both give the
 * same answers in the same shapes, so each command is written once.
 */
import type { DeviceId, UserId } from '../../core/ids.js';
import type { DeviceCursor, DeviceStart, MailboxStats, SendResult } from '../../core/types.js';
import type { TotalsPage } from '../../metrics/totals.js';
import type { ImportResult } from '../../postoffice/export.js';

export interface AdminTarget {
  /** Where the commands act, for messages: the URL or the data dir. */
  readonly where: string;
  stats(user: UserId): Promise<MailboxStats>;
  purge(user: UserId): Promise<{ deleted: number; deletedBytes: number }>;
  /** Move one device's cursor to the user's last seq (it skips its backlog). */
  skipToHead(user: UserId, device: DeviceId): Promise<{ cursor: number; deleted: number }>;
  listDevices(user: UserId): Promise<DeviceCursor[]>;
  addDevice(user: UserId, device: DeviceId, start: DeviceStart): Promise<DeviceCursor & { created: boolean }>;
  removeDevice(user: UserId, device: DeviceId): Promise<boolean>;
  /** One page of user ids, for counting before a walk. */
  users(after: UserId | undefined, limit: number): Promise<UserId[]>;
  /** Totals over one page of users. */
  totals(after: UserId | undefined, limit: number): Promise<TotalsPage>;
  send(msg: { from: UserId; to: UserId; id: string; body: string; toDevice?: DeviceId; ttlSeconds?: number }): Promise<SendResult>;
  /** The user's mailbox as NDJSON lines, each ending in a newline (src/postoffice/export.ts). */
  exportLines(user: UserId): AsyncIterable<string>;
  /** Import an NDJSON export (raw bytes) into `user`'s empty mailbox. */
  importNdjson(user: UserId, chunks: AsyncIterable<Uint8Array>): Promise<ImportResult>;
  close(): Promise<void>;
}

export interface DataDirOptions {
  /** A data dir with no store yet gets a new, empty one (an import into a fresh data dir). */
  create?: boolean;
}
