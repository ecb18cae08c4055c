import { z } from 'zod';
import { isBytes, type Body } from '../core/bytes.js';
import { DeviceIdSchema, MessageIdSchema, SeqSchema, UserIdSchema } from '../core/ids.js';

/** Text (not empty), or opaque bytes (any length, 0 included), stored byte for byte. */
export const BodySchema = z
  .custom<Body>((v) => typeof v === 'string' || isBytes(v), 'body must be a string or bytes (Uint8Array)')
  .refine((v) => typeof v !== 'string' || v.length > 0, 'body must not be empty');

/** What a caller of `send` gives. `from` is filled in by the gateway from the sender's token. */
export const SendInputSchema = z
  .object({
    to: UserIdSchema,
    toDevice: DeviceIdSchema.optional(),
    from: UserIdSchema,
    id: MessageIdSchema,
    body: BodySchema,
    ttlSeconds: z.number().int().min(1).optional(),
    receipt: z.boolean().optional(),
    /** Skip the per-sender share check (fair quotas): for backend keys configured so, and receipts. */
    senderQuotaExempt: z.boolean().optional(),
  })
  .strict();
export type SendInput = z.input<typeof SendInputSchema>;
/** A send as SendInputSchema returns it. */
export type ParsedSendInput = z.output<typeof SendInputSchema>;

declare const checkedSend: unique symbol;
/**
 * A send its caller has already checked against everything SendInputSchema checks (the
 * gateway: its frame schema plus checkedSendOf in gateway/frames.ts), so
 * PostOffice.sendChecked does not parse it a second time. Only that one function makes
 * one; every other caller (library, HTTP, CLI) goes through PostOffice.send and its parse.
 */
export type CheckedSendInput = ParsedSendInput & { readonly [checkedSend]: true };

/**
 * A group send: the same message to each of `to` (distinct user ids; at most
 * limits.maxRecipients, checked by the post office). No `toDevice`: a device id means
 * nothing across several users.
 */
export const GroupSendInputSchema = SendInputSchema.omit({ to: true, toDevice: true })
  .extend({
    to: z
      .array(UserIdSchema)
      .min(1, 'to must name at least one recipient')
      .refine((to) => new Set(to).size === to.length, 'to must not name a recipient twice'),
  })
  .strict();
export type GroupSendInput = z.input<typeof GroupSendInputSchema>;

/** An ephemeral send: the same fields minus what only a stored message has. */
const storedOnly = (field: string) =>
  z
    .unknown()
    .refine((v) => v === undefined, `${field} applies only to stored messages, not to an ephemeral one`)
    .optional();
export const EphemeralInputSchema = SendInputSchema.extend({
  ttlSeconds: storedOnly('ttlSeconds'),
  receipt: storedOnly('receipt'),
  senderQuotaExempt: storedOnly('senderQuotaExempt'),
}).strict();
export type EphemeralInput = z.input<typeof EphemeralInputSchema>;

export const ReadInputSchema = z.object({
  user: UserIdSchema,
  device: DeviceIdSchema,
  afterSeq: SeqSchema,
  limit: z.number().int().min(1, 'limit must be at least 1'),
});

export const AckInputSchema = z.object({
  user: UserIdSchema,
  device: DeviceIdSchema,
  upTo: SeqSchema,
});

export const DeviceInputSchema = z.object({
  user: UserIdSchema,
  device: DeviceIdSchema,
  start: z.enum(['auto', 'oldest', 'head']).default('auto'),
});

export const UserInputSchema = z.object({ user: UserIdSchema });

export const ExportInputSchema = z.object({
  user: UserIdSchema,
  afterSeq: SeqSchema,
  upTo: SeqSchema,
  limit: z.number().int().min(1, 'limit must be at least 1'),
});
