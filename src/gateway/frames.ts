/**
 * zod schemas for client frames, built to match src/core/protocol.ts (a type test
 * below the schemas fails to compile if they drift). Unknown fields are dropped, not
 * rejected, so newer clients can talk to older servers; in particular a `from` in a
 * send frame is ignored: the sender is always the token's user.
 */
import { z } from 'zod';
import { PoboxError } from '../core/errors.js';
import { DeviceIdSchema, MessageIdSchema, SeqSchema, UserIdSchema } from '../core/ids.js';
import type { AckFrame, ClientFrame, HelloFrame, PingFrame, RecipientResult, SendFrame, ServerFrame } from '../core/protocol.js';
import type { RecipientOutcome, StoredMessage } from '../core/types.js';
import { parseInput } from '../core/validate.js';

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
  body: z.string().min(1, 'body must not be empty'),
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
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new FrameError(new PoboxError('BAD_REQUEST', 'frame must be a JSON object'));
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

export function encodeFrame(frame: ServerFrame): string {
  return JSON.stringify(frame);
}

/**
 * The `message` frame of a stored message, written straight from the message: the hot
 * path of delivery builds no frame object to hand to JSON.stringify. Same text as
 * encodeFrame of the equivalent MessageFrame (a test checks it on generated messages).
 */
export function encodeMessageFrame(m: StoredMessage): string {
  let s = `{"type":"message","seq":${m.seq},"id":${JSON.stringify(m.id)},"from":${JSON.stringify(m.from)},"body":${JSON.stringify(m.body)},"sentAt":${m.sentAt},"expiresAt":${m.expiresAt}`;
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
