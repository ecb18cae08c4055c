/**
 * The wire form of a wake-up on a shared bus: one JSON object. The message rides along
 * only when the whole payload stays small, so a burst of large messages never turns the
 * bus into a second copy of the store; receivers read the store when it is missing.
 */
import { z } from 'zod';
import { DeviceIdSchema, MessageIdSchema, SeqSchema, UserIdSchema } from '../core/ids.js';
import type { EphemeralMessage, StoredMessage } from '../core/types.js';
import type { Wake } from './contract.js';

const StoredMessageSchema = z.object({
  seq: SeqSchema,
  id: MessageIdSchema,
  from: UserIdSchema,
  to: UserIdSchema,
  toDevice: DeviceIdSchema.optional(),
  body: z.string(),
  bytes: z.number().int().min(0),
  sentAt: z.number(),
  expiresAt: z.number(),
  receipt: z.boolean().optional(),
});

const EphemeralSchema = z.object({
  id: MessageIdSchema,
  from: UserIdSchema,
  to: UserIdSchema,
  toDevice: DeviceIdSchema.optional(),
  body: z.string(),
  /** The body is the base64 of bytes. */
  binary: z.literal(true).optional(),
  bytes: z.number().int().min(0),
  sentAt: z.number(),
});

const WakeSchema = z.object({
  user: UserIdSchema,
  epoch: z.string().min(1).max(128),
  seq: SeqSchema,
  message: StoredMessageSchema.optional(),
  ephemeral: EphemeralSchema.optional(),
  origin: z.string().min(1).max(64).optional(),
  reply: z.object({ to: z.string().min(1).max(64), ref: z.string().min(1).max(64) }).optional(),
});

/** JSON for a wake; drops the message when the payload would exceed `maxInlineBytes`. */
export function encodeWake(wake: Wake, maxInlineBytes: number): string {
  // An ephemeral message exists nowhere else: it always travels whole.
  if (wake.ephemeral !== undefined) {
    const { user, epoch, seq, ephemeral: e, origin, reply } = wake;
    const ephemeral = typeof e.body === 'string' ? e : { ...e, body: Buffer.from(e.body.buffer, e.body.byteOffset, e.body.byteLength).toString('base64'), binary: true };
    return JSON.stringify({ user, epoch, seq, ephemeral, ...(origin !== undefined ? { origin } : {}), ...(reply !== undefined ? { reply } : {}) });
  }
  const bare = { user: wake.user, epoch: wake.epoch, seq: wake.seq };
  // A stored message of bytes never rides along: receivers read it from the store.
  if (wake.message === undefined || typeof wake.message.body !== 'string') return JSON.stringify(bare);
  // UTF-8 takes at least one byte per UTF-16 unit: a long body is decided without serialising it.
  if (wake.message.body.length > maxInlineBytes) return JSON.stringify(bare);
  const full = JSON.stringify({ ...bare, message: wake.message });
  return Buffer.byteLength(full, 'utf8') <= maxInlineBytes ? full : JSON.stringify(bare);
}

/** Parse a payload from the bus; undefined for anything malformed (another version, a stray publisher). */
export function decodeWake(payload: string): Wake | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(payload);
  } catch {
    return undefined;
  }
  const r = WakeSchema.safeParse(raw);
  if (!r.success) return undefined;
  const { message, ephemeral, origin, reply, ...rest } = r.data;
  if (ephemeral !== undefined) {
    if (ephemeral.to !== rest.user) return undefined;
    const body = ephemeral.binary ? new Uint8Array(Buffer.from(ephemeral.body, 'base64')) : ephemeral.body;
    const e: EphemeralMessage = { id: ephemeral.id, from: ephemeral.from, to: ephemeral.to, body, bytes: ephemeral.bytes, sentAt: ephemeral.sentAt };
    if (ephemeral.toDevice !== undefined) e.toDevice = ephemeral.toDevice;
    return { ...rest, ephemeral: e, ...(origin !== undefined ? { origin } : {}), ...(reply !== undefined ? { reply } : {}) };
  }
  if (message === undefined) return rest;
  if (message.seq !== rest.seq || message.to !== rest.user) return undefined;
  const m: StoredMessage = {
    seq: message.seq,
    id: message.id,
    from: message.from,
    to: message.to,
    body: message.body,
    bytes: message.bytes,
    sentAt: message.sentAt,
    expiresAt: message.expiresAt,
  };
  if (message.toDevice !== undefined) m.toDevice = message.toDevice;
  if (message.receipt !== undefined) m.receipt = message.receipt;
  return { ...rest, message: m };
}
