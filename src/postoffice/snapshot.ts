/**
 * The checks of a mailbox snapshot before a restore (an import), shared by the NDJSON
 * reader (export.ts, which names the line at fault) and PostOffice.restore (library
 * callers hand it a snapshot directly).
 */
import { z } from 'zod';
import { bodyByteLength, type Body } from '../core/bytes.js';
import { PoboxError, mailboxFull, tooManyDevices } from '../core/errors.js';
import { DeviceIdSchema, MessageIdSchema, SeqSchema, UserIdSchema, type UserId } from '../core/ids.js';
import type { StoredMessage } from '../core/types.js';
import type { MailboxSnapshot, SnapshotDevice } from '../store/contract.js';

export const TimeSchema = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
export const EpochSchema = z.string().regex(/^[A-Za-z0-9._:-]{1,64}$/, 'epoch must be 1-64 characters of A-Z a-z 0-9 . _ : -');

/** A device's gap notice (src/core/protocol.ts GapNotice): seqs from..to, how many, why. */
export const GapNoticeSchema = z
  .object({
    from: SeqSchema.min(1),
    to: SeqSchema.min(1),
    count: z.number().int().min(1),
    reasons: z
      .array(z.enum(['expired', 'purged']))
      .min(1, 'reasons must name at least one reason')
      .refine((r) => new Set(r).size === r.length, 'reasons must not repeat'),
  })
  .strict()
  .refine((g) => g.from <= g.to && g.count <= g.to - g.from + 1, 'a gap notice needs from <= to and at most to - from + 1 messages');

/** A snapshot as a library caller hands it to PostOffice.restore. */
export const MailboxSnapshotSchema = z
  .object({
    user: UserIdSchema,
    epoch: EpochSchema,
    lastSeq: SeqSchema,
    devices: z.array(z.object({ device: DeviceIdSchema, cursor: SeqSchema, registeredAt: TimeSchema, gap: GapNoticeSchema.optional() })),
    messages: z.array(
      z.object({
        seq: SeqSchema.min(1),
        id: MessageIdSchema,
        from: UserIdSchema,
        to: UserIdSchema.optional(),
        body: z.custom<Body>((v) => typeof v === 'string' || v instanceof Uint8Array, 'body must be a string or bytes'),
        bytes: z.number().int().min(0).optional(),
        sentAt: TimeSchema,
        expiresAt: TimeSchema,
        toDevice: DeviceIdSchema.optional(),
        receipt: z.boolean().optional(),
      }),
    ),
  })
  .strict();
export type MailboxSnapshotInput = z.input<typeof MailboxSnapshotSchema>;

/** What one import may hold: the target's limits. */
export interface ImportLimits {
  maxBodyBytes: number;
  maxMailboxMessages: number;
  maxMailboxBytes: number;
  maxDevices: number;
}

/**
 * The checks of a snapshot, one part at a time, so an import can name the line at fault
 * and stop at the first one over a limit: devices once each with a cursor at most the
 * last seq, messages in ascending seq order up to the last seq with distinct ids, bodies
 * within the size limit, the whole within the mailbox quotas, and a message for a device
 * only if that device is in the snapshot.
 */
export class SnapshotBuilder {
  private readonly devices = new Map<string, SnapshotDevice>();
  private readonly messages: StoredMessage[] = [];
  private readonly ids = new Set<string>();
  private bytes = 0;

  constructor(
    private readonly user: UserId,
    private readonly epoch: string,
    private readonly lastSeq: number,
    private readonly limits: ImportLimits,
  ) {}

  get counts(): { devices: number; messages: number; bytes: number } {
    return { devices: this.devices.size, messages: this.messages.length, bytes: this.bytes };
  }

  device(d: SnapshotDevice): void {
    if (this.devices.has(d.device)) throw new PoboxError('BAD_REQUEST', `device ${d.device} is listed twice`, { field: 'device' });
    if (d.cursor > this.lastSeq) throw new PoboxError('BAD_REQUEST', `device ${d.device} has cursor ${d.cursor}, beyond the last seq ${this.lastSeq}`, { field: 'cursor' });
    // A notice lives until an ack reaches its `to`: within the seqs assigned (at or below the cursor after an admin's skip).
    if (d.gap && d.gap.to > this.lastSeq) {
      throw new PoboxError('BAD_REQUEST', `device ${d.device} has a gap notice up to ${d.gap.to}, beyond the last seq ${this.lastSeq}`, {
        field: 'gap',
      });
    }
    if (this.devices.size >= this.limits.maxDevices) throw tooManyDevices(this.user, this.limits.maxDevices);
    const kept: SnapshotDevice = { device: d.device, cursor: d.cursor, registeredAt: d.registeredAt };
    if (d.gap) kept.gap = { from: d.gap.from, to: d.gap.to, count: d.gap.count, reasons: [...d.gap.reasons] };
    this.devices.set(d.device, kept);
  }

  message(m: Omit<StoredMessage, 'to' | 'bytes'>): void {
    const prev = this.messages.at(-1)?.seq ?? 0;
    if (m.seq <= prev) throw new PoboxError('BAD_REQUEST', `message seq ${m.seq} does not follow seq ${prev}: messages must be in ascending seq order`, { field: 'seq' });
    if (m.seq > this.lastSeq) throw new PoboxError('BAD_REQUEST', `message seq ${m.seq} is beyond the last seq ${this.lastSeq}`, { field: 'seq' });
    if (this.ids.has(m.id)) throw new PoboxError('BAD_REQUEST', `message id ${m.id} appears twice`, { field: 'id' });
    if (m.expiresAt <= m.sentAt) throw new PoboxError('BAD_REQUEST', `message seq ${m.seq} expires before it was sent`, { field: 'expiresAt' });
    const bytes = bodyByteLength(m.body);
    if (bytes > this.limits.maxBodyBytes) {
      throw new PoboxError('PAYLOAD_TOO_LARGE', `message seq ${m.seq} has a body of ${bytes} bytes; the limit is ${this.limits.maxBodyBytes}`, { field: 'body' });
    }
    if (this.messages.length + 1 > this.limits.maxMailboxMessages || this.bytes + bytes > this.limits.maxMailboxBytes) throw mailboxFull(this.user);
    this.ids.add(m.id);
    this.bytes += bytes;
    const stored: StoredMessage = { seq: m.seq, id: m.id, from: m.from, to: this.user, body: m.body, bytes, sentAt: m.sentAt, expiresAt: m.expiresAt };
    if (m.toDevice !== undefined) stored.toDevice = m.toDevice;
    if (m.receipt) stored.receipt = true;
    this.messages.push(stored);
  }

  finish(): MailboxSnapshot {
    for (const m of this.messages) {
      if (m.toDevice !== undefined && !this.devices.has(m.toDevice)) {
        throw new PoboxError('BAD_REQUEST', `message seq ${m.seq} is for device ${m.toDevice}, which is not in the import`, { field: 'toDevice' });
      }
    }
    return { user: this.user, epoch: this.epoch, lastSeq: this.lastSeq, devices: [...this.devices.values()], messages: this.messages };
  }
}
