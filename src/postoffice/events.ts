import type { DeviceId, Seq, UserId } from '../core/ids.js';
import type { StoredMessage } from '../core/types.js';

/** In-process change events of a post office. Delivery sessions and metrics listen here. */
export interface PostOfficeEvents {
  /** A new message is durable in `user`'s mailbox (duplicates are not announced). */
  stored: { user: UserId; epoch: string; message: StoredMessage };
  /** A device's cursor moved; `deleted` messages were removed because every device had acked them. */
  acked: { user: UserId; device: DeviceId; cursor: Seq; deleted: number; deletedBytes: number };
  /** A send was refused (quota, size, bad input, ...). */
  rejected: { code: string; to?: UserId };
  /** The sweeper removed expired messages. */
  expired: { count: number; bytes: number };
  /** Messages removed outside of acks: purge or device removal. */
  removed: { user: UserId; count: number; bytes: number; reason: 'purge' | 'device-removed' };
  device: { user: UserId; device: DeviceId; change: 'registered' | 'removed' };
  /** An import restored `count` messages (`bytes` in all, the oldest sent at `oldestSentAt`) into `user`'s empty mailbox. */
  restored: { user: UserId; epoch: string; count: number; bytes: number; oldestSentAt?: number };
  /**
   * A resend of an id already stored: the recipient is woken again, so a wake-up lost with
   * the node that stored the original (issue 13) is repaired by the sender's retry.
   */
  resent: { user: UserId; epoch: string; seq: Seq };
  /** Work no request waits for failed (the sweeper, deletes the store left for later); see src/ops/background-failures.ts. */
  backgroundFailure: { source: 'sweeper' | 'store_delete'; err: unknown };
}
