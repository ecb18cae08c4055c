/**
 * The WebSocket protocol, as types and constants only (no runtime dependencies), so the
 * browser SDK can import it. The gateway validates client frames with zod schemas
 * built to match these types (src/gateway/frames.ts). docs/protocol.md is the prose.
 *
 * A frame is one JSON object per WebSocket text message with a `type` field, or, on a
 * connection opened with `?encoding=msgpack`, one MessagePack map per binary message
 * (where a body of bytes travels as raw bytes). In JSON, bytes travel as base64 with
 * `binary: true` beside them.
 */
import type { ErrorCode } from './errors.js';

export const PROTOCOL_VERSION = 1;

/** How frames are written on a connection, chosen at connect with `?encoding=` (default json). */
export const ENCODINGS = ['json', 'msgpack'] as const;
export type Encoding = (typeof ENCODINGS)[number];

// ---- client -> server -------------------------------------------------------------

/** First frame after the socket opens. `epoch` and `lastSeq` are what the client last saw. */
export interface HelloFrame {
  type: 'hello';
  protocol?: number;
  epoch?: string;
  lastSeq?: number;
}

/** Cumulative ack: this device has everything up to and including `upTo`. */
export interface AckFrame {
  type: 'ack';
  upTo: number;
}

/**
 * Send a message. `id` is the sender's own id, used for dedupe (per recipient) and to
 * match `accepted`. `to` is one recipient, or a list of distinct recipients (a group
 * send: one request, one `accepted` with a result per recipient; see RecipientResult).
 */
export interface SendFrame {
  type: 'send';
  id: string;
  to: string | string[];
  /** Only with a single recipient. */
  toDevice?: string;
  /**
   * Text, or bytes: in JSON the base64 of the bytes with `binary: true`; in MessagePack
   * raw bytes (a bin value; `binary` is not needed). Size limits count bytes.
   */
  body: string | Uint8Array;
  binary?: boolean;
  ttlSeconds?: number;
  receipt?: boolean;
  /**
   * Deliver only to the recipient's devices connected right now (typing, presence,
   * "read up to"): never stored, never counted against a quota, never in a drain.
   * Answered with `accepted {ephemeral: true, reached}`.
   */
  ephemeral?: boolean;
}

export interface PingFrame {
  type: 'ping';
  t?: number;
}

export type ClientFrame = HelloFrame | AckFrame | SendFrame | PingFrame;

// ---- server -> client -------------------------------------------------------------

export interface WelcomeFrame {
  type: 'welcome';
  protocol: number;
  user: string;
  device: string;
  epoch: string;
  /** True when the client's `epoch` differs: seqs it remembers mean nothing now. */
  epochChanged: boolean;
  /** The device's ack cursor: delivery starts after it. */
  cursor: number;
  lastSeq: number;
  window: { messages: number; bytes: number };
  heartbeatMs: number;
}

export interface MessageFrame {
  type: 'message';
  seq: number;
  id: string;
  from: string;
  /** Text, or bytes (JSON: base64 with `binary: true`; MessagePack: raw bytes). */
  body: string | Uint8Array;
  binary?: true;
  sentAt: number;
  expiresAt: number;
  toDevice?: string;
  receipt?: boolean;
}

/** Why messages a device had not acked were removed: their retention ended, or an admin purged the mailbox. */
export type GapReason = 'expired' | 'purged';

/**
 * A gap notice: messages in seqs from..to (inclusive) that a device had not acknowledged
 * were removed (or skipped as expired) and will never be delivered to it. `count` is how
 * many (one delivered but not yet acked when it was removed is counted too); seqs in the
 * range that were not for this device are not. Notices of removals at different times
 * merge: from = the lowest, to = the highest, counts added, reasons united.
 */
export interface GapNotice {
  from: number;
  to: number;
  count: number;
  reasons: GapReason[];
}

/** Sent once per connection, after the backlog that existed at connect has been sent. */
export interface CaughtUpFrame {
  type: 'caughtUp';
  seq: number;
  /**
   * Present when messages this device had not acked, after the last message of the
   * backlog, are gone without being shown to it (expired, purged). A stored notice is
   * sent on every connection until the device acks `gap.to`.
   */
  gap?: GapNotice;
}

/**
 * A gap notice on its own: written right before the first message above `to` (during
 * the drain or live), or when found while live (a message that expired while this
 * connection was held behind its window). Every message of this device up to `to` that
 * is still stored was sent before it, so an ack past it always comes after it.
 */
export interface GapFrame extends GapNotice {
  type: 'gap';
}

/**
 * The answer to a send. For a stored message: it is durable (never sent before the store
 * has committed it), with its seq. For an ephemeral send (`ephemeral: true`): nothing was
 * stored (`seq` 0, `durable` false) and `reached` says how many devices it was handed to,
 * on every node; a lower bound when another node answered too late or the bus was down.
 */
export interface AcceptedFrame {
  type: 'accepted';
  id: string;
  seq: number;
  duplicate: boolean;
  durable: boolean;
  ephemeral?: true;
  reached?: number;
  /**
   * For a group send (`to` was a list): one result per recipient, in the order given
   * (`seq` is then 0 and `duplicate` false at the top level; read the results).
   */
  results?: RecipientResult[];
}

/**
 * What became of a group send for one recipient: stored (or already stored: `duplicate`)
 * with its seq in that recipient's mailbox, or refused for that recipient alone with a
 * typed error (a full mailbox refuses only its owner).
 */
export type RecipientResult = { to: string; seq: number; duplicate: boolean } | { to: string; error: { code: ErrorCode; message: string; field?: string } };

/** An ephemeral message: no seq, never stored, never acked, never sent again. */
export interface EphemeralFrame {
  type: 'ephemeral';
  id: string;
  from: string;
  body: string | Uint8Array;
  binary?: true;
  sentAt: number;
  toDevice?: string;
}

export interface AckedFrame {
  type: 'acked';
  cursor: number;
}

export interface ErrorFrame {
  type: 'error';
  code: ErrorCode;
  message: string;
  /** The `id` of the send frame this answers, when it answers one. */
  id?: string;
  field?: string;
}

export interface PongFrame {
  type: 'pong';
  t?: number;
}

export type ServerFrame = WelcomeFrame | MessageFrame | EphemeralFrame | CaughtUpFrame | GapFrame | AcceptedFrame | AckedFrame | ErrorFrame | PongFrame;

/** WebSocket close codes pobox uses (4000-4999 is the application range). */
export const CloseCode = {
  NORMAL: 1000,
  /** The server is shutting down; reconnect (elsewhere). */
  GOING_AWAY: 1001,
  /** A frame exceeded the size limit. */
  TOO_BIG: 1009,
  /** Internal error; reconnect with backoff. */
  INTERNAL: 1011,
  /** Another connection of the same device took over. Do not reconnect automatically. */
  REPLACED: 4000,
  /** Missing, expired or invalid token. Do not retry with the same token. */
  UNAUTHORIZED: 4001,
  /** The token is valid but not allowed to do this. */
  FORBIDDEN: 4003,
  /** Too many invalid frames. */
  POLICY: 4008,
  /** Too many frames or connection attempts; reconnect after a backoff. */
  RATE_LIMITED: 4029,
  /** No hello, or no traffic within the heartbeat window. */
  TIMEOUT: 4408,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];
