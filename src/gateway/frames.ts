/**
 * zod schemas for client frames, built to match src/core/protocol.ts (a type test
 * below the schemas fails to compile if they drift). Unknown fields are dropped, not
 * rejected, so newer clients can talk to older servers; in particular a `from` in a
 * send frame is ignored: the sender is always the token's user.
 */
import { z } from 'zod';
import { PoboxError } from '../core/errors.js';
import { DeviceIdSchema, MessageIdSchema, SeqSchema, UserIdSchema } from '../core/ids.js';
import { Packr } from 'msgpackr';
import { BASE64, isBytes, type Body } from '../core/bytes.js';
import type { AckFrame, ClientFrame, HelloFrame, MessageFrame, PingFrame, RecipientResult, SendFrame, ServerFrame } from '../core/protocol.js';
import type { RecipientOutcome, StoredMessage } from '../core/types.js';
import { parseInput } from '../core/validate.js';
import type { CheckedSendInput, ParsedSendInput } from '../postoffice/schemas.js';

export const HelloFrameSchema = z.object({
  type: z.literal('hello'),
  protocol: z.number().int().min(1).optional(),
  epoch: z.string().min(1).max(64).optional(),
  lastSeq: SeqSchema.optional(),
});

export const AckFrameSchema = z.object({
  type: z.literal('ack'),
  upTo: SeqSchema,
});

const RecipientListSchema = z.array(UserIdSchema).min(1, 'to must name at least one recipient').max(10_000, 'to names more than 10000 recipients');

/**
 * One user id, or a list of them (a group send; its size limit, postOffice.limits.
 * maxRecipients, is the post office's to check). Every problem is reported on `to` itself.
 */
const RecipientsSchema = z.custom<string | string[]>().superRefine((v, ctx) => {
  const r = (Array.isArray(v) ? RecipientListSchema : UserIdSchema).safeParse(v);
  if (r.success) return;
  for (const issue of r.error.issues) {
    const at = issue.path.length > 0 ? `recipient ${issue.path.join('.')}: ` : '';
    ctx.addIssue({ code: 'custom', message: `${at}${issue.message}` });
  }
});

export const SendFrameSchema = z.object({
  type: z.literal('send'),
  id: MessageIdSchema,
  to: RecipientsSchema,
  toDevice: DeviceIdSchema.optional(),
  // Text, base64 with `binary: true` (JSON), or raw bytes (MessagePack); see frameBody.
  body: z.union([z.string(), z.custom<Uint8Array>((v) => isBytes(v), 'body must be a string or bytes')]),
  binary: z.boolean().optional(),
  ttlSeconds: z.number().int().min(1).optional(),
  receipt: z.boolean().optional(),
  ephemeral: z.boolean().optional(),
});

export const PingFrameSchema = z.object({
  type: z.literal('ping'),
  t: z.number().finite().optional(),
});

const schemas = {
  hello: HelloFrameSchema,
  ack: AckFrameSchema,
  send: SendFrameSchema,
  ping: PingFrameSchema,
} as const;

// Compile-time check that the schemas produce exactly the protocol types.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _matches: [
  Same<z.output<typeof HelloFrameSchema>, HelloFrame>,
  Same<z.output<typeof AckFrameSchema>, AckFrame>,
  Same<z.output<typeof SendFrameSchema>, SendFrame>,
  Same<z.output<typeof PingFrameSchema>, PingFrame>,
] = [true, true, true, true];
void _matches;

/** The `id` of a send frame, if the raw object has a usable one, to tag its error. */
function idOf(obj: Record<string, unknown>): string | undefined {
  return obj['type'] === 'send' && typeof obj['id'] === 'string' && obj['id'].length <= 128 ? obj['id'] : undefined;
}

export class FrameError extends PoboxError {
  constructor(
    err: PoboxError,
    /** The send frame's id when the bad frame was a send, so the client can match it. */
    readonly frameId?: string,
  ) {
    super(err.code, err.message, err.field === undefined ? undefined : { field: err.field });
  }
}

/** Parse one WebSocket text message into a client frame, or throw a FrameError (BAD_REQUEST). */
export function parseClientFrame(data: string): ClientFrame {
  let raw: unknown;
  try {
    raw = JSON.parse(data);
  } catch {
    throw new FrameError(new PoboxError('BAD_REQUEST', 'frame is not valid JSON'));
  }
  return parseFrameObject(raw, 'JSON');
}

/** Parse one binary WebSocket message of a MessagePack connection into a client frame. */
export function parseMsgpackFrame(data: Uint8Array): ClientFrame {
  let raw: unknown;
  try {
    raw = wirePackr.unpack(data);
  } catch {
    throw new FrameError(new PoboxError('BAD_REQUEST', 'frame is not valid MessagePack'));
  }
  return parseFrameObject(raw, 'MessagePack');
}

function parseFrameObject(raw: unknown, format: string): ClientFrame {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || isBytes(raw)) {
    throw new FrameError(new PoboxError('BAD_REQUEST', `frame must be a ${format} ${format === 'JSON' ? 'object' : 'map'}`));
  }
  const obj = raw as Record<string, unknown>;
  const type = obj['type'];
  if (typeof type !== 'string') throw new FrameError(new PoboxError('BAD_REQUEST', 'frame type must be a string', { field: 'type' }));
  const schema = Object.prototype.hasOwnProperty.call(schemas, type) ? schemas[type as keyof typeof schemas] : undefined;
  if (!schema) throw new FrameError(new PoboxError('BAD_REQUEST', `unknown frame type "${type.slice(0, 32)}"`, { field: 'type' }));
  try {
    return parseInput(schema, obj, `${type} frame`);
  } catch (err) {
    throw new FrameError(err as PoboxError, idOf(obj));
  }
}

/**
 * The body a send frame carries, as the post office takes it: text; the bytes of base64
 * text marked `binary: true` (JSON); or raw bytes (MessagePack). BAD_REQUEST (field
 * `body`) for `binary` with text that is not standard padded base64.
 */
export function frameBody(frame: { body: string | Uint8Array; binary?: boolean | undefined }): Body {
  const { body } = frame;
  if (typeof body !== 'string' || !frame.binary) return body;
  if (!BASE64.test(body)) throw new PoboxError('BAD_REQUEST', 'send: body: with binary: true the body must be standard base64 (with padding)', { field: 'body' });
  return Buffer.from(body, 'base64');
}

/**
 * A single-recipient send built from a frame that SendFrameSchema accepted, branded for
 * PostOffice.sendChecked so that each message is validated once on this path, not twice:
 * the frame schema checks `to`, `id`, `toDevice`, `ttlSeconds` and `receipt` with the same
 * schemas SendInputSchema uses; `from` is the connection's user, which auth took from the
 * token only after UserIdSchema accepted it; `body` is a string or bytes (frameBody). The
 * one rule the frame schema lacks, text not empty, is answered with undefined: the caller
 * then hands that send to PostOffice.send, whose parse refuses it exactly as before.
 */
export function checkedSend(input: ParsedSendInput): CheckedSendInput | undefined {
  return input.body === '' ? undefined : (input as CheckedSendInput);
}

/** A body as JSON carries it: text as is, bytes as base64 with `binary: true` beside it. */
export function jsonBody(body: Body): { body: string; binary?: true } {
  return typeof body === 'string' ? { body } : { body: base64Of(body), binary: true };
}

function base64Of(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/**
 * MessagePack for the wire: plain maps (no shared structures or records, so any
 * MessagePack library decodes them), bytes as bin values.
 */
const wirePackr = new Packr({ useRecords: false, moreTypes: false, copyBuffers: true });

/** A server frame for a MessagePack connection (one binary WebSocket message). */
export function packFrame(frame: ServerFrame): Buffer {
  return wirePackr.pack(frame);
}

/** The `message` frame of a stored message for a MessagePack connection: the body as raw bytes or text. */
export function packMessageFrame(m: StoredMessage): Buffer {
  const f: MessageFrame = { type: 'message', seq: m.seq, id: m.id, from: m.from, body: m.body, sentAt: m.sentAt, expiresAt: m.expiresAt };
  if (m.toDevice !== undefined) f.toDevice = m.toDevice;
  if (m.receipt) f.receipt = true;
  return wirePackr.pack(f);
}

/** A server frame as JSON text; a body of bytes becomes base64 with `binary: true`. */
export function encodeFrame(frame: ServerFrame): string {
  if ((frame.type === 'message' || frame.type === 'ephemeral') && typeof frame.body !== 'string') return JSON.stringify({ ...frame, ...jsonBody(frame.body) });
  return JSON.stringify(frame);
}

/**
 * The `message` frame of a stored message, written straight from the message: the hot
 * path of delivery builds no frame object to hand to JSON.stringify. Same text as
 * encodeFrame of the equivalent MessageFrame (a test checks it on generated messages).
 */
export function encodeMessageFrame(m: StoredMessage): string {
  const body = typeof m.body === 'string' ? JSON.stringify(m.body) : `"${base64Of(m.body)}","binary":true`;
  let s = `{"type":"message","seq":${m.seq},"id":${JSON.stringify(m.id)},"from":${JSON.stringify(m.from)},"body":${body},"sentAt":${m.sentAt},"expiresAt":${m.expiresAt}`;
  if (m.toDevice !== undefined) s += `,"toDevice":${JSON.stringify(m.toDevice)}`;
  if (m.receipt) s += ',"receipt":true';
  return `${s}}`;
}

/** The `accepted` answer to a send (the hot path of sending), written without a frame object. */
export function encodeAcceptedFrame(id: string, seq: number, duplicate: boolean): string {
  return `{"type":"accepted","id":${JSON.stringify(id)},"seq":${seq},"duplicate":${duplicate},"durable":true}`;
}

/** The per-recipient results of a group send, as `accepted.results` and the HTTP answer carry them. */
export function recipientResults(outcomes: readonly RecipientOutcome[]): RecipientResult[] {
  return outcomes.map((o) => (o.ok ? { to: o.to, seq: o.seq, duplicate: o.duplicate } : { to: o.to, error: o.error.toJSON() }));
}

/** Refuse what a group send cannot carry, before it reaches the post office. */
export function checkGroupSend(frame: { toDevice?: string | undefined; ephemeral?: boolean | undefined }): void {
  if (frame.toDevice !== undefined) throw new PoboxError('BAD_REQUEST', 'send: toDevice applies only to a single recipient, not to a list', { field: 'toDevice' });
  if (frame.ephemeral) throw new PoboxError('BAD_REQUEST', 'send: an ephemeral message goes to a single recipient, not to a list', { field: 'to' });
}
