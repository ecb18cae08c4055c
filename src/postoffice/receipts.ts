/**
 * Delivery receipts. A message sent with `receipt: true` produces, for each recipient
 * device that acks it, a receipt stored in the *sender's* mailbox as an ordinary message
 * from the system sender (`pobox` by default). It therefore waits for an offline sender
 * and arrives by the same path as any message. Its body is JSON (ReceiptBody).
 *
 * Order of work on an ack: read the range about to be acked (while it is still stored),
 * store the receipts durably, and only then let the ack move the cursor. A receipt id is
 * derived from (recipient, device, epoch, seq), so a retried ack, two racing acks, or an
 * ack replayed after a crash store each receipt once (the post office dedupes by id).
 * A receipt that cannot be stored for good (the sender's mailbox is full) is dropped and
 * counted; a temporary store failure fails the ack, which the client retries.
 *
 * The read is skipped when the ack says `noReceiptAsked` (the common ack: a connection
 * acking what it delivered). That read was a full store read per ack, and on the embedded
 * engine it also waits for the user's unsynced records. The gateway's session sets it only
 * when every message of the device in the acked range (store cursor, upTo] went out on its
 * own connection and none of them had `receipt` (DeviceSession.flushAcks): a message's
 * `receipt` is fixed when it is stored and a seq never names another message within an
 * epoch, so what the connection saw is what this read would find. Anything else (an ack
 * for messages seen on an earlier connection, before the session has read, or beyond what
 * it sent) reads as before, so no receipt is lost by the skip.
 */
import { createHash } from 'node:crypto';
import { isPoboxError, PoboxError } from '../core/errors.js';
import type { DeviceId, Seq, UserId } from '../core/ids.js';
import type { StoredMessage } from '../core/types.js';
import type { PostOffice } from './post-office.js';

export const RECEIPT_SENDER = 'pobox';

/** The JSON body of a receipt message. */
export interface ReceiptBody {
  type: 'receipt';
  /** The sender's id of the acked message. */
  id: string;
  /** Its seq in the recipient's mailbox. */
  seq: Seq;
  /** The recipient user. */
  to: UserId;
  /** The recipient device that acked it. */
  device: DeviceId;
  /** When the ack arrived (ms since the epoch, post office clock). */
  ackedAt: number;
}

export type ReceiptOutcome = 'stored' | 'duplicate' | 'dropped';

export interface ReceiptsOptions {
  /** The system sender id receipts come from; reserve it (no user should be issued a token for it). */
  sender?: UserId;
  /** Receipt retention; the post office default when unset. */
  ttlSeconds?: number;
  onOutcome?: (outcome: ReceiptOutcome, receipt: ReceiptBody & { sender: UserId }, error?: PoboxError) => void;
}

/** The idempotent id of the receipt for (recipient, device, epoch, seq). */
export function receiptId(recipient: UserId, device: DeviceId, epoch: string, seq: Seq): string {
  const h = createHash('sha256').update(`${recipient}\0${device}\0${epoch}\0${seq}`).digest('hex');
  return `rcpt-${h.slice(0, 40)}`;
}

/** Parse a message from the receipts sender; undefined when it is not a receipt. */
export function parseReceipt(message: Pick<StoredMessage, 'from' | 'body'>, sender: UserId = RECEIPT_SENDER): ReceiptBody | undefined {
  if (message.from !== sender) return undefined;
  try {
    if (typeof message.body !== 'string') return undefined;
    const v = JSON.parse(message.body) as Partial<ReceiptBody>;
    return v && v.type === 'receipt' && typeof v.id === 'string' ? (v as ReceiptBody) : undefined;
  } catch {
    return undefined;
  }
}

/** Turn receipts on for a post office. Returns the function that turns them off. */
export function enableReceipts(po: PostOffice, opts: ReceiptsOptions = {}): () => void {
  const sender = opts.sender ?? RECEIPT_SENDER;
  return po.addBeforeAckHook(async ({ user, device, upTo, noReceiptAsked }) => {
    if (noReceiptAsked) return;
    const wanted = await receiptRange(po, user, device, upTo, sender);
    if (!wanted) return;
    const ackedAt = po.now();
    await Promise.all(
      wanted.messages.map(async (m) => {
        const body: ReceiptBody = { type: 'receipt', id: m.id, seq: m.seq, to: user, device, ackedAt };
        const tag = { ...body, sender: m.from };
        try {
          const r = await po.send({
            from: sender,
            to: m.from,
            id: receiptId(user, device, wanted.epoch, m.seq),
            body: JSON.stringify(body),
            // The server writes these, not a chatty sender: never held to a sender's share.
            senderQuotaExempt: true,
            ...(opts.ttlSeconds !== undefined ? { ttlSeconds: opts.ttlSeconds } : {}),
          });
          opts.onOutcome?.(r.duplicate ? 'duplicate' : 'stored', tag);
        } catch (err) {
          // Permanent refusals drop the receipt; anything retryable but a full mailbox fails the ack.
          if (isPoboxError(err) && (err.code === 'MAILBOX_FULL' || !err.retryable)) {
            opts.onOutcome?.('dropped', tag, err);
            return;
          }
          throw err;
        }
      }),
    );
  });
}

/**
 * The messages with `receipt` in the device's range (cursor, upTo], or undefined when
 * the ack is going to fail anyway (beyond the last seq). Pages start small and grow, so
 * the common one-message ack reads a handful of entries.
 */
async function receiptRange(po: PostOffice, user: UserId, device: DeviceId, upTo: Seq, sender: UserId): Promise<{ epoch: string; messages: StoredMessage[] } | undefined> {
  const messages: StoredMessage[] = [];
  const maxPage = po.config.limits.maxPageSize;
  let limit = Math.min(16, maxPage);
  let after = 0;
  let epoch = '';
  for (;;) {
    const page = await po.read(user, device, after, limit);
    if (upTo > page.lastSeq) return undefined;
    epoch = page.epoch;
    for (const m of page.messages) {
      if (m.seq > upTo) return { epoch, messages };
      if (m.receipt && m.from !== sender) messages.push(m);
    }
    if (!page.more || page.nextAfter >= upTo) return { epoch, messages };
    after = page.nextAfter;
    limit = Math.min(limit * 4, maxPage);
  }
}
