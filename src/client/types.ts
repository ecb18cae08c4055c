import type { PoboxError } from '../core/errors.js';
import type { Encoding, EphemeralFrame, MessageFrame, RecipientResult } from '../core/protocol.js';
import type { GapNotice } from '../core/protocol.js';

/**
 * The subset of the standard WebSocket API the client uses. Browsers provide it as
 * `globalThis.WebSocket`; in Node 20 pass `WebSocket` from the `ws` package.
 */
export interface WebSocketLike {
  readonly readyState: number;
  // Handlers are typed loosely so both the DOM WebSocket and `ws` fit without adapters.
  onopen: ((event: any) => void) | null; // eslint-disable-line @typescript-eslint/no-explicit-any
  onmessage: ((event: any) => void) | null; // eslint-disable-line @typescript-eslint/no-explicit-any
  onclose: ((event: any) => void) | null; // eslint-disable-line @typescript-eslint/no-explicit-any
  onerror: ((event: any) => void) | null; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Set to 'arraybuffer' on MessagePack connections (browsers otherwise hand binary messages over as Blobs). */
  binaryType?: string;
  /** A string goes as a text message, bytes as a binary one. */
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export type ClientState = 'connecting' | 'open' | 'live' | 'reconnecting' | 'closed';

export type AckMode = 'auto' | 'manual';

/** A token, or a function that returns a fresh one for every connection attempt. */
export type TokenSource = string | (() => string | Promise<string>);

export interface ClientOptions {
  /** WebSocket implementation; defaults to `globalThis.WebSocket`. Node 20: `import { WebSocket } from 'ws'`. */
  WebSocket?: WebSocketConstructor;
  /**
   * 'auto' (default): ack a message once every `message` handler has returned (or its
   * promise resolved). 'manual': nothing is acked until you call `client.ack(seq)`.
   */
  ack?: AckMode;
  /** Delay before a coalesced ack is sent, in ms (default 0: at the end of the current burst of frames; an ack also goes at once when a quarter of the server's window is waiting). */
  ackDelayMs?: number;
  /** Ceiling of the first reconnect delay, ms (default 300). */
  backoffBaseMs?: number;
  /** Largest reconnect delay ceiling, ms (default 30,000). */
  backoffMaxMs?: number;
  /** A socket that has not been welcomed within this many ms is dropped and retried (default 10,000). */
  connectTimeoutMs?: number;
  /** Keepalive ping interval, ms; default half the server's `heartbeatMs`, 0 disables. */
  pingIntervalMs?: number;
  /** Default timeout for `send()`, ms; 0 (default) waits for as long as the client is open. */
  sendTimeoutMs?: number;
  /** Start from a position saved from `client.position` so a restarted app does not see old messages again. */
  resume?: { epoch: string; lastSeq: number };
  /** Source of randomness for backoff jitter, [0, 1) (default Math.random). */
  random?: () => number;
  /**
   * How frames travel: 'json' (default; text messages, bodies of bytes as base64) or
   * 'msgpack' (binary MessagePack messages, bodies of bytes as raw bytes: a third
   * smaller on the wire, and no base64 work on either side).
   */
  encoding?: Encoding;
}

/** A message as handed to the application: `body` is a string, or a Uint8Array for a message of bytes. */
export type ClientMessage = Omit<MessageFrame, 'type' | 'binary'>;

export interface SendOptions {
  /**
   * The recipient, or a list of distinct recipients (a group send: one frame, stored once
   * per recipient, answered with `results`, one per recipient, in this order).
   */
  to: string | string[];
  /** Text, or bytes (a Uint8Array, stored and delivered byte for byte; may be empty). Size limits count bytes. */
  body: string | Uint8Array;
  /** Your id for this message; the server dedupes on it. Generated when omitted. */
  id?: string;
  toDevice?: string;
  ttlSeconds?: number;
  receipt?: boolean;
  /**
   * Deliver only to the recipient's devices connected right now; never stored. Resolves
   * with `seq` 0 and `reached` (devices it was handed to). An ephemeral send that was not
   * answered before a reconnect is written again on the next connection (unlike stored
   * messages it is not deduplicated, so a device may see it twice).
   */
  ephemeral?: boolean;
  /** Overrides `sendTimeoutMs` for this send. */
  timeoutMs?: number;
}

export interface SendReceipt {
  /** The id the message was sent with (yours, or the generated one). */
  id: string;
  seq: number;
  /** True when the server already had this id (e.g. a resend after a reconnect). */
  duplicate: boolean;
  /** For an ephemeral send: the devices it was handed to (seq is then 0). */
  reached?: number;
  /**
   * For a group send: each recipient's seq (and whether it was a duplicate), or that
   * recipient's error (`seq` and `duplicate` are then 0 and false at the top level).
   */
  results?: RecipientResult[];
}

/** A gap notice as handed to the application (event `gap`). */
export type GapEvent = GapNotice;

/** An ephemeral message as handed to the application (event `ephemeral`): no seq, no ack. */
export type EphemeralClientMessage = Omit<EphemeralFrame, 'type' | 'binary'>;

export interface StateChange {
  state: ClientState;
  previous: ClientState;
  /** The URL being connected to (connecting/open/live). */
  url?: string;
  /** For 'reconnecting': retry number since the last welcome (0-based), its ceiling and drawn delay. */
  attempt?: number;
  ceilingMs?: number;
  delayMs?: number;
  /** The WebSocket close code and reason that caused this change, when one did. */
  closeCode?: number;
  reason?: string;
}

export interface ClientEvents {
  message: ClientMessage;
  /** An ephemeral message (typing, presence): delivered only while connected, never acked. */
  ephemeral: EphemeralClientMessage;
  /** The backlog that existed at connect has been handed over; live delivery follows. */
  caughtUp: { seq: number };
  /**
   * Messages this device had not acked are gone without being shown to it (`reasons`:
   * they expired, or an admin purged the mailbox): `count` of them in seqs `from..to`.
   * Emitted once per notice, in order with the messages (before the first message
   * above `to`). In auto-ack mode the SDK acks `to` once the listeners are done, which
   * clears the notice on the server; in manual mode call `ack(to)`.
   */
  gap: GapEvent;
  state: StateChange;
  error: PoboxError;
}

export interface ClientStats {
  /** Message frames received, duplicates included. */
  received: number;
  /** Messages handed to the application. */
  delivered: number;
  /** Message frames dropped because the application had already seen them. */
  duplicatesDropped: number;
  acksSent: number;
  /** The device's cursor as the server last confirmed it durable (its `acked` frame). */
  serverCursor: number;
  /** Sockets opened after the first. */
  reconnects: number;
}
