/**
 * One device's WebSocket session: the delivery state machine of ARCHITECTURE.md "The delivery state machine".
 *
 *   awaiting-hello --hello--> starting --welcome--> draining --caughtUp--> live --> closed
 *         |                      |                     |                    |
 *         +---- timeout 4408 ----+------ close (replaced 4000, going away 1001, policy 4008, ...) ----+
 *
 * - awaiting-hello: the token was verified at upgrade (user + device come from it, never
 *   from a frame). Only `hello` and `ping` are accepted; no hello within helloTimeoutMs
 *   closes with 4408.
 * - starting: SUBSCRIBE to the user's wake-ups BEFORE reading any message, so a message
 *   stored while we read is either in a page we read or announced by a wake we hold;
 *   then read the first page, which carries the mailbox head, epoch and the device's
 *   cursor (one store read; a new device is registered first: auto, a user's first device
 *   from the start, later ones at the head). Then `welcome` (epoch, cursor, window), and
 *   the page.
 * - draining: read pages after `readPos` (everything at or below readPos was sent to
 *   this connection or is not for this device) and send them, never more than the
 *   window of unacked messages/bytes, and never while the socket's send buffer is over
 *   maxBufferedBytes. When a read returns no more, send exactly one `caughtUp`.
 * - live: each wake-up makes the session read after readPos again. A wake that carries
 *   the message itself is sent directly (fast path) only when it is exactly readPos + 1
 *   in the same epoch, no read is running and the window has room; otherwise it is
 *   just a reason to read. While the bus is unhealthy, a timer reads every
 *   pollIntervalMs instead.
 * - gap notices: messages of this device gone unseen (the stored notice a read returns,
 *   the expired ones it passed) are reported in order: a `gap` frame right before the
 *   first message above them, or in `caughtUp` after the backlog, or as a `gap` frame
 *   while live. An ack past a notice (which removes it) thus always follows the notice.
 * - acks: cumulative `ack {upTo}` frees window space at once, is committed to the store
 *   (coalesced: one commit in flight, then the highest ack that arrived meanwhile) and
 *   answered with `acked {cursor}` once durable.
 *
 * Outgoing frames are written in batches (see writeData): the socket is corked by the
 * first frame of a turn and flushed once, at the end of each drained page or when the
 * turn ends, so a page or a group commit's `accepted` answers cost one writev, not one
 * per frame. Batching changes when bytes leave, never their order or the state above.
 *
 * The state changes only through nextSessionState (session-state.ts: the table of allowed
 * moves), and every change is announced as the gateway event `sessionState`.
 *
 * Why nothing is skipped or sent twice: all reads and sends of one session run in one
 * loop (`pump`), one at a time; a message is sent only when its seq is above readPos,
 * and readPos only grows. The store is the source of truth; wake-ups only say "read".
 */
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import type { Bus, Wake } from '../bus/contract.js';
import { PoboxError, toPoboxError, type ErrorCode } from '../core/errors.js';
import type { Body } from '../core/bytes.js';
import { CloseCode, PROTOCOL_VERSION, type ClientFrame, type Encoding, type HelloFrame, type SendFrame, type ServerFrame } from '../core/protocol.js';
import { addToGap, mergeGap } from '../core/gap.js';
import type { EphemeralMessage, GapNotice, ReadPage, StoredMessage } from '../core/types.js';
import type { TypedEmitter } from '../core/emitter.js';
import type { PostOffice } from '../postoffice/post-office.js';
import type { GroupSendInput, ParsedSendInput } from '../postoffice/schemas.js';
import type { GatewayLimits, SessionConfig } from './config.js';
import type { GatewayEvents } from './events.js';
import {
  checkGroupSend,
  checkedSend,
  encodeAcceptedFrame,
  encodeFrame,
  encodeMessageFrame,
  FrameError,
  frameBody,
  packFrame,
  packMessageFrame,
  parseClientFrame,
  parseMsgpackFrame,
  recipientResults,
} from './frames.js';
import type { Logger } from './logger.js';
import { TokenBucket } from './rate-limit.js';
import { FIRST_SESSION_STATE, nextSessionState, type SessionState } from './session-state.js';

export type { SessionState } from './session-state.js';

export interface SessionDeps {
  postOffice: PostOffice;
  bus: Bus;
  session: SessionConfig;
  limits: GatewayLimits;
  log: Logger;
  events: TypedEmitter<GatewayEvents>;
  /** Called once when the session ends, so the server can forget it. */
  onEnd: (s: DeviceSession) => void;
  /** Tracks sends and cursor commits in flight across the server, for graceful shutdown. */
  trackSend: (p: Promise<unknown>) => void;
  /** True once the server is shutting down: new sends are refused. */
  shuttingDown: () => boolean;
  /** This gateway node's id on the bus (ephemeral wakes it published itself are skipped). */
  nodeId: string;
}

interface InFlight {
  seq: number;
  bytes: number;
}

export class DeviceSession {
  private current: SessionState = FIRST_SESSION_STATE;
  readonly openedAt = Date.now();
  lastSeen = Date.now();

  private epoch = '';
  /** Every seq at or below this was sent on this connection or is not for this device. */
  private readPos = 0;
  /** The durable cursor, as last confirmed by the store. */
  private cursor = 0;
  /** The highest seq sent on this connection whose message asked for a receipt (0: none). */
  private receiptSeq = 0;
  private readonly inflight: InFlight[] = [];
  private inflightBytes = 0;
  private pumping = false;
  private again = false;
  private blockedBy: 'window' | 'socket' | null = null;
  private caughtUpSent = false;
  /** Every seq at or below this was sent, or is not for this device, or is gone (readPos, or a complete read's lastSeq). */
  private passed = 0;
  /** The device's stored gap notice as the last read showed it, not yet reported on this connection. */
  private storedGap: GapNotice | undefined;
  /** Expired messages this connection passed without sending, not yet reported. */
  private expiredGap: GapNotice | undefined;
  /** The highest `to` of a gap notice reported on this connection (in caughtUp or a gap frame). */
  private gapReported = 0;
  private helloAt = 0;
  private sent = 0;
  private drained = 0;
  private ackQueue: number | undefined;
  private acking = false;
  private invalid = 0;
  /** Made at the first send: most connections only receive. */
  private sendBucket: TokenBucket | undefined;
  private helloTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => Promise<void>) | undefined;
  private childLog: Logger | undefined;
  /** The TCP socket `ws` writes to; corked while a batch of frames is being written. */
  private readonly socket: Duplex | undefined;
  private corked = false;
  /** Made when first needed (the socket's buffer near its limit): resumes a loop paused by backpressure. */
  private afterWrite: ((err?: Error) => void) | undefined;

  constructor(
    readonly ws: WebSocket,
    readonly user: string,
    readonly device: string,
    readonly remote: string,
    private readonly deps: SessionDeps,
    /** How this connection's frames are written (`?encoding=` at connect): JSON text or MessagePack binary messages. */
    readonly encoding: Encoding = 'json',
    /** The connection's id on every log line about it: x-request-id when valid, else a random one made on first use (requestId). */
    private id?: string,
  ) {
    this.socket = socketOf(ws);
    deps.events.emit('sessionState', { user, device, to: this.current });
    this.helloTimer = setTimeout(DeviceSession.helloTimedOut, deps.session.helloTimeoutMs, this);
    // Listeners shared by every connection (`this` is the socket), not closures per connection.
    sessionOf.set(ws, this);
    ws.on('message', DeviceSession.wsMessage);
    ws.on('pong', DeviceSession.wsPong);
    ws.on('close', DeviceSession.wsClose);
    ws.on('error', DeviceSession.wsError);
  }

  private static helloTimedOut(this: void, s: DeviceSession): void {
    s.close(CloseCode.TIMEOUT, 'no hello received in time');
  }

  private static wsMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
    const s = sessionOf.get(this);
    if (!s) return;
    // A throw here would be an uncaught exception in the ws emitter: contain it to this connection.
    try {
      s.onMessage(data as Buffer, isBinary);
    } catch (err) {
      s.fail(err, 'frame handling failed');
    }
  }

  private static wsPong(this: WebSocket): void {
    const s = sessionOf.get(this);
    if (s) s.lastSeen = Date.now();
  }

  private static wsClose(this: WebSocket, code: number, reason: Buffer): void {
    sessionOf.get(this)?.onClosed(code, reason.toString());
  }

  private static wsError(this: WebSocket, err: Error): void {
    // ws closes the socket itself after an error (e.g. 1009 for a frame over maxPayload).
    sessionOf.get(this)?.log.warn({ err: err.message }, 'websocket error');
  }

  get state(): SessionState {
    return this.current;
  }

  /** The one way the state changes: a move the table does not allow throws, every other is announced. */
  private moveTo(to: SessionState): void {
    const from = this.current;
    this.current = nextSessionState(from, to);
    this.deps.events.emit('sessionState', { user: this.user, device: this.device, from, to });
  }

  /**
   * The connection's id on its log lines. A random one is made only when first asked for:
   * with info lines off, most connections never log, and a reconnect storm made one per
   * connection for nothing.
   */
  get requestId(): string {
    return (this.id ??= flatRandomId());
  }

  /** This session's logger, made on first use: most idle sessions log only when they close. */
  private get log(): Logger {
    return (this.childLog ??= this.deps.log.child({ requestId: this.requestId, user: this.user, device: this.device }));
  }

  /** A short snapshot for diagnostics and the demo page. */
  info(): {
    user: string;
    device: string;
    state: SessionState;
    readPos: number;
    cursor: number;
    inflight: number;
    sent: number;
    blockedBy: 'window' | 'socket' | null;
  } {
    return {
      user: this.user,
      device: this.device,
      state: this.state,
      readPos: this.readPos,
      cursor: this.cursor,
      inflight: this.inflight.length,
      sent: this.sent,
      blockedBy: this.blockedBy,
    };
  }

  // ---- incoming frames ------------------------------------------------------------

  private onMessage(data: Buffer, isBinary: boolean): void {
    this.lastSeen = Date.now();
    if (this.state === 'closed') return;
    let frame: ClientFrame;
    try {
      if (!isBinary) frame = parseClientFrame(data.toString('utf8'));
      else if (this.encoding === 'msgpack') frame = parseMsgpackFrame(data);
      else throw new FrameError(errorOf('BAD_REQUEST', 'binary frames need a MessagePack connection (?encoding=msgpack); send JSON text'));
    } catch (err) {
      const fe = err instanceof FrameError ? err : new FrameError(toPoboxError(err, 'BAD_REQUEST'));
      // A malformed send never reaches the post office; count its refusal for metrics here.
      if (fe.frameId !== undefined) this.deps.events.emit('sendRefused', { code: fe.code, via: 'ws' });
      this.rejectFrame(fe);
      return;
    }
    switch (frame.type) {
      case 'ping':
        this.write({ type: 'pong', ...(frame.t !== undefined ? { t: frame.t } : {}) });
        return;
      case 'hello':
        if (this.state !== 'awaiting-hello') return this.rejectFrame(badRequest('hello was already received'));
        void this.start(frame).catch((err) => this.fail(err, 'start failed'));
        return;
      case 'ack':
        if (this.state === 'awaiting-hello') return this.rejectFrame(badRequest('send hello first'));
        if (this.state === 'starting') {
          // Sent right after hello (e.g. for messages handled on an earlier connection): commit it once started.
          if (this.ackQueue === undefined || frame.upTo > this.ackQueue) this.ackQueue = frame.upTo;
          return;
        }
        this.onAck(frame.upTo);
        return;
      case 'send':
        if (this.state === 'awaiting-hello') return this.rejectFrame(badRequest('send hello first', undefined, frame.id));
        this.onSend(frame);
        return;
    }
  }

  /** Answer a bad frame; too many of them close the connection with 4008. */
  private rejectFrame(err: FrameError): void {
    this.invalid++;
    this.writeError(err, err.frameId);
    if (this.invalid >= this.deps.limits.maxInvalidFrames) this.close(CloseCode.POLICY, 'too many invalid frames');
  }

  private writeError(err: PoboxError, id?: string): void {
    this.deps.events.emit('error', { code: err.code, via: 'ws', user: this.user, device: this.device });
    if (err.code === 'INTERNAL' || err.code === 'UNAVAILABLE') this.log.error({ code: err.code, err: err.message }, 'session error');
    else this.log.info({ code: err.code, err: err.message }, 'frame rejected');
    this.write({
      type: 'error',
      code: err.code,
      message: err.message,
      ...(id !== undefined ? { id } : {}),
      ...(err.field !== undefined ? { field: err.field } : {}),
    });
  }

  private async start(hello: HelloFrame): Promise<void> {
    clearTimeout(this.helloTimer);
    this.helloTimer = undefined; // an idle session keeps nothing of its start
    this.moveTo('starting');
    if (hello.protocol !== undefined && hello.protocol !== PROTOCOL_VERSION) {
      this.writeError(badRequest(`protocol ${hello.protocol} is not supported; this server speaks ${PROTOCOL_VERSION}`, 'protocol'));
      this.close(CloseCode.POLICY, 'unsupported protocol version');
      return;
    }
    // Subscribe before the first page is read: a message stored from here on is either in
    // a page we read or announced by a wake-up we receive.
    const unsubscribe = await this.deps.bus.subscribe(this.user, (w) => this.onWake(w));
    if (this.isClosed()) {
      void unsubscribe().catch(() => undefined);
      return;
    }
    this.unsubscribe = unsubscribe;
    // One store read: the first page carries the epoch, cursor and last seq of the welcome.
    // A reconnect of a known device costs no write (and no fsync); a new one is registered.
    const page = await this.deps.postOffice.readOrRegister(this.user, this.device, 0, this.pageLimit());
    if (this.isClosed()) return;
    this.epoch = page.epoch;
    this.cursor = page.cursor;
    this.readPos = this.cursor;
    this.write({
      type: 'welcome',
      protocol: PROTOCOL_VERSION,
      user: this.user,
      device: this.device,
      epoch: this.epoch,
      epochChanged: hello.epoch !== undefined && hello.epoch !== this.epoch,
      cursor: this.cursor,
      lastSeq: page.lastSeq,
      window: { messages: this.deps.session.windowMessages, bytes: this.deps.session.windowBytes },
      heartbeatMs: this.deps.session.heartbeatMs,
    });
    this.helloAt = Date.now();
    this.moveTo('draining');
    if (!this.deps.bus.healthy()) this.setPolling(true);
    if (this.ackQueue !== undefined && !this.acking) this.flushAcksInBackground();
    this.pump(page);
  }

  private onSend(frame: SendFrame): void {
    this.sendBucket ??= new TokenBucket(this.deps.limits.sendRate.perSecond, this.deps.limits.sendRate.burst);
    if (!this.sendBucket.take()) {
      this.deps.events.emit('sendRefused', { code: 'RATE_LIMITED', via: 'ws', ...(typeof frame.to === 'string' ? { to: frame.to } : {}) });
      this.writeError(errorOf('RATE_LIMITED', 'send rate limit exceeded; slow down'), frame.id);
      return;
    }
    if (this.deps.shuttingDown()) {
      this.deps.events.emit('sendRefused', { code: 'UNAVAILABLE', via: 'ws', ...(typeof frame.to === 'string' ? { to: frame.to } : {}) });
      this.writeError(errorOf('UNAVAILABLE', 'server is shutting down; send again after reconnecting'), frame.id);
      return;
    }
    if (Array.isArray(frame.to)) return this.onGroupSend(frame, frame.to);
    const to = frame.to;
    let body;
    try {
      body = frameBody(frame);
    } catch (err) {
      this.deps.events.emit('sendRefused', { code: 'BAD_REQUEST', via: 'ws', to });
      this.rejectFrame(new FrameError(toPoboxError(err), frame.id));
      return;
    }
    if (frame.ephemeral) return this.onEphemeralSend(frame, to, body);
    // The sender is the token's user; the frame schema already dropped any `from`.
    const input: ParsedSendInput = { from: this.user, to, id: frame.id, body };
    if (frame.toDevice !== undefined) input.toDevice = frame.toDevice;
    if (frame.ttlSeconds !== undefined) input.ttlSeconds = frame.ttlSeconds;
    if (frame.receipt) input.receipt = true;
    // The frame schema has checked it: the post office does not parse it again (checkedSend).
    const checked = checkedSend(input);
    // One promise per send on the hot path: each answer catches its own failure.
    const p = (checked ? this.deps.postOffice.sendChecked(checked) : this.deps.postOffice.send(input)).then(
      (r) => {
        try {
          this.deps.events.emit('accepted', { from: this.user, to, seq: r.seq, duplicate: r.duplicate, via: 'ws' });
          if (this.encoding === 'json') this.writeData(encodeAcceptedFrame(frame.id, r.seq, r.duplicate));
          else this.write({ type: 'accepted', id: frame.id, seq: r.seq, duplicate: r.duplicate, durable: true });
        } catch (err) {
          this.log.error({ err: String(err) }, 'failed to answer a send');
        }
      },
      (err) => {
        try {
          const e = toPoboxError(err);
          if (e.code === 'BAD_REQUEST' || e.code === 'PAYLOAD_TOO_LARGE') this.rejectFrame(new FrameError(e, frame.id));
          else this.writeError(e, frame.id);
        } catch (err2) {
          this.log.error({ err: String(err2) }, 'failed to answer a send');
        }
      },
    );
    this.deps.trackSend(p);
  }

  /** A group send: one post office call, one `accepted` with a result per recipient. */
  private onGroupSend(frame: SendFrame, to: string[]): void {
    const answer = (err: unknown): void => {
      const e = toPoboxError(err);
      if (e.code === 'BAD_REQUEST' || e.code === 'PAYLOAD_TOO_LARGE') this.rejectFrame(new FrameError(e, frame.id));
      else this.writeError(e, frame.id);
    };
    let sending;
    try {
      checkGroupSend(frame);
      const input: GroupSendInput = { from: this.user, to, id: frame.id, body: frameBody(frame) };
      if (frame.ttlSeconds !== undefined) input.ttlSeconds = frame.ttlSeconds;
      if (frame.receipt) input.receipt = true;
      sending = this.deps.postOffice.sendGroup(input);
    } catch (err) {
      answer(err);
      return;
    }
    const p = sending
      .then((r) => {
        for (const o of r.results) if (o.ok) this.deps.events.emit('accepted', { from: this.user, to: o.to, seq: o.seq, duplicate: o.duplicate, via: 'ws' });
        this.write({ type: 'accepted', id: frame.id, seq: 0, duplicate: false, durable: true, results: recipientResults(r.results) });
      }, answer)
      .catch((err: unknown) => this.log.error({ err: String(err) }, 'failed to answer a group send'));
    this.deps.trackSend(p);
  }

  private onEphemeralSend(frame: SendFrame, to: string, body: Body): void {
    const p = this.deps.postOffice
      .sendEphemeral({
        from: this.user,
        to,
        id: frame.id,
        body,
        ...(frame.toDevice !== undefined ? { toDevice: frame.toDevice } : {}),
        // Passed on so the post office refuses them (BAD_REQUEST): they mean nothing here.
        ...(frame.ttlSeconds !== undefined ? { ttlSeconds: frame.ttlSeconds } : {}),
        ...(frame.receipt !== undefined ? { receipt: frame.receipt } : {}),
      })
      .then(
        (r) => this.write({ type: 'accepted', id: frame.id, seq: 0, duplicate: false, durable: false, ephemeral: true, reached: r.reached }),
        (err) => {
          const e = toPoboxError(err);
          if (e.code === 'BAD_REQUEST' || e.code === 'PAYLOAD_TOO_LARGE') this.rejectFrame(new FrameError(e, frame.id));
          else this.writeError(e, frame.id);
        },
      )
      .catch((err: unknown) => this.log.error({ err: String(err) }, 'failed to answer an ephemeral send'));
    this.deps.trackSend(p);
  }

  /**
   * Hand an ephemeral message to this device if it is connected and ready for it.
   * Best effort by design: a device still starting, or whose socket is backed up, misses it.
   */
  deliverEphemeral(m: EphemeralMessage): boolean {
    if (this.state !== 'draining' && this.state !== 'live') return false;
    if (m.toDevice !== undefined && m.toDevice !== this.device) return false;
    if (this.socketFull() || this.ws.readyState !== this.ws.OPEN) return false;
    const frame: ServerFrame = { type: 'ephemeral', id: m.id, from: m.from, body: m.body, sentAt: m.sentAt };
    if (m.toDevice !== undefined) frame.toDevice = m.toDevice;
    this.write(frame);
    return true;
  }

  private onAck(upTo: number): void {
    // The client has these: free their window space now; the cursor commit follows.
    let freed = false;
    while (this.inflight.length > 0 && this.inflight[0]!.seq <= upTo) {
      this.inflightBytes -= this.inflight.shift()!.bytes;
      freed = true;
    }
    if (freed && this.blockedBy === 'window') this.pump();
    if (this.ackQueue === undefined || upTo > this.ackQueue) this.ackQueue = upTo;
    if (!this.acking) this.flushAcksInBackground();
  }

  /** flushAcks() answers each failed commit itself; what escapes it is a bug, logged here. */
  private flushAcksInBackground(): void {
    this.flushAcks().catch((err: unknown) => this.log.error({ err: String(err) }, 'ack commit loop failed; the client resends its ack on the next connection'));
  }

  private async flushAcks(): Promise<void> {
    this.acking = true;
    try {
      // Acks that arrived before the socket closed are still committed after it closes:
      // the client has those messages, and dropping the ack would only resend them.
      while (this.ackQueue !== undefined) {
        const upTo = this.ackQueue;
        this.ackQueue = undefined;
        try {
          // No receipt asked in the acked range, known without a store read: every seq in
          // (cursor, readPos] was sent on this connection or is not for this device (a readPos
          // moved by an ack moves the cursor with it), the store's cursor is at or above ours
          // (cursors only rise), and no message sent here above our cursor asked for one.
          // If the epoch changed under us, the new epoch's messages were never sent to this
          // device, so there is no true receipt to lose. Otherwise receipts read the range.
          const noReceiptAsked = upTo <= this.readPos && this.receiptSeq <= this.cursor;
          const committing = this.deps.postOffice.ack(this.user, this.device, upTo, { noReceiptAsked });
          this.deps.trackSend(committing); // graceful shutdown waits for cursor commits too
          const r = await committing;
          this.cursor = Math.max(this.cursor, r.cursor);
          // Acked beyond what this connection sent (e.g. seen on an earlier one): never send those.
          if (this.cursor > this.readPos) this.readPos = this.cursor;
          this.write({ type: 'acked', cursor: this.cursor });
        } catch (err) {
          const e = toPoboxError(err);
          if (this.isClosed()) continue; // nobody to tell; the messages come again next session
          if (e.code === 'BAD_REQUEST' || e.code === 'NOT_FOUND') this.rejectFrame(new FrameError(e));
          else this.writeError(e);
        }
      }
    } finally {
      this.acking = false;
    }
  }

  // ---- delivery -----------------------------------------------------------------

  private onWake(w: Wake): boolean {
    if (w.ephemeral !== undefined) {
      // The node that took the send has handed it to its own sessions already.
      return w.origin !== this.deps.nodeId && this.deliverEphemeral(w.ephemeral);
    }
    this.onStoredWake(w);
    return false;
  }

  private onStoredWake(w: Wake): void {
    if (this.state !== 'draining' && this.state !== 'live') {
      this.again = true; // start() pumps once it is ready
      return;
    }
    if (w.epoch === this.epoch && w.seq <= this.readPos) return; // already covered
    const m = w.message;
    if (
      m &&
      this.state === 'live' &&
      !this.pumping &&
      this.blockedBy === null &&
      w.epoch === this.epoch &&
      w.seq === this.readPos + 1 &&
      m.seq === w.seq &&
      this.fits(m.bytes) &&
      !this.socketFull()
    ) {
      if (m.toDevice !== undefined && m.toDevice !== this.device) this.readPos = m.seq;
      // The post office's clock, as reads use: a message is expired by the same time everywhere.
      else if (m.expiresAt <= this.deps.postOffice.now()) {
        this.readPos = m.seq;
        this.noteExpired([m.seq], m.seq);
        this.passed = Math.max(this.passed, m.seq);
        this.reportGap(this.passed);
      } else {
        if (this.storedGap || this.expiredGap) this.reportGap(m.seq - 1);
        this.deliver(m, true);
      }
      return;
    }
    this.pump();
  }

  /**
   * Run the read loop, or ask the running one to go round once more. `first`: a page
   * already read (at start), sent before the loop reads on.
   */
  private pump(first?: ReadPage): void {
    if (this.state !== 'draining' && this.state !== 'live') return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    this.pumpLoop(first).then(
      () => {
        this.pumping = false;
        if (this.again && this.blockedBy === null) this.pump();
      },
      (err) => {
        this.pumping = false;
        this.fail(err, 'delivery failed');
      },
    );
  }

  private async pumpLoop(first: ReadPage | undefined): Promise<void> {
    for (;;) {
      if (this.isClosed()) return;
      if (this.socketFull()) {
        this.blockedBy = 'socket';
        return;
      }
      if (!this.windowOpen()) {
        this.blockedBy = 'window';
        return;
      }
      this.blockedBy = null;
      let page: ReadPage;
      if (first) {
        // Read before this loop started: a wake-up that came meanwhile (it set `again`)
        // may be about a message the page does not hold, so `again` stays as it is.
        page = first;
        first = undefined;
      } else {
        this.again = false;
        page = await this.deps.postOffice.read(this.user, this.device, this.readPos, this.pageLimit());
        if (this.isClosed()) return;
      }
      if (page.epoch !== this.epoch) {
        this.close(CloseCode.INTERNAL, 'mailbox epoch changed; reconnect');
        return;
      }
      if (page.gap && page.gap.to > this.gapReported) this.storedGap = page.gap;
      let stopped: 'window' | 'socket' | null = null;
      for (const m of page.messages) {
        if (m.seq <= this.readPos) continue; // an ack moved readPos past it while we read
        if (!this.fits(m.bytes)) {
          stopped = 'window';
          break;
        }
        if (this.socketFull()) {
          stopped = 'socket';
          break;
        }
        // What is gone below this message is reported before it, so an ack past a notice
        // always comes after the notice (a notice is removed by such an ack).
        this.noteExpired(page.expired, m.seq - 1);
        this.reportGap(m.seq - 1);
        this.deliver(m, false);
      }
      if (stopped === null) {
        // Expired messages after the last one sent are passed only if the page was; after a
        // stop the next read, from readPos, lists them again.
        if (page.nextAfter > this.readPos) this.readPos = page.nextAfter;
        this.noteExpired(page.expired, this.readPos);
        this.passed = Math.max(this.passed, this.readPos, page.more ? 0 : page.lastSeq);
        // While draining, what is left goes with caughtUp (or before the next message).
        if (this.caughtUpSent) this.reportGap(this.passed);
      }
      // One writev per page (the last page of a drain shares it with its caughtUp); the
      // client starts on it while the next page is read.
      const drained = stopped === null && !page.more && !this.caughtUpSent;
      if (!drained) this.flush();
      if (stopped === 'window') {
        this.blockedBy = 'window';
        return;
      }
      // Full while corked, but the flush may have handed it all to the kernel: then read on.
      if (stopped === 'socket') continue;
      if (page.more) continue;
      if (!this.caughtUpSent) {
        this.caughtUpSent = true;
        this.moveTo('live');
        const gap = this.takeGap(this.passed);
        this.write({ type: 'caughtUp', seq: this.readPos, ...(gap ? { gap } : {}) });
        this.flush();
        this.deps.events.emit('caughtUp', { user: this.user, device: this.device, seq: this.readPos, drained: this.drained, ms: Date.now() - this.helloAt });
        if (gap) this.deps.events.emit('gap', { user: this.user, device: this.device, ...gap });
      }
      if (!this.again) return;
    }
  }

  /** Expired seqs of a page that this connection has passed: those up to `upTo`. */
  private noteExpired(seqs: readonly number[] | undefined, upTo: number): void {
    if (!seqs) return;
    for (const seq of seqs) if (seq <= upTo && seq > (this.expiredGap?.to ?? this.gapReported)) this.expiredGap = addToGap(this.expiredGap, seq, 'expired');
  }

  /**
   * The notice to report now that everything up to `upTo` was passed, if any: the expired
   * messages passed, merged with the stored notice when its `to` is within `upTo` (every
   * message of this device below it that is still stored went out first, so the client
   * may treat `to` as handed over).
   */
  private takeGap(upTo: number): GapNotice | undefined {
    const stored = this.storedGap && this.storedGap.to <= upTo ? this.storedGap : undefined;
    const gap = mergeGap(stored, this.expiredGap);
    if (!gap) return undefined;
    if (stored) this.storedGap = undefined;
    this.expiredGap = undefined;
    this.gapReported = Math.max(this.gapReported, gap.to);
    return gap;
  }

  /** A notice as its own frame: before a message above it, or when found while live. */
  private reportGap(upTo: number): void {
    const gap = this.takeGap(upTo);
    if (!gap) return;
    this.write({ type: 'gap', ...gap });
    this.deps.events.emit('gap', { user: this.user, device: this.device, ...gap });
  }

  /** Messages to ask the store for: a page, never more than the window has room for. */
  private pageLimit(): number {
    const { pageSize, windowMessages } = this.deps.session;
    return Math.max(1, Math.min(pageSize, this.deps.postOffice.config.limits.maxPageSize, windowMessages - this.inflight.length));
  }

  private windowOpen(): boolean {
    const { windowMessages, windowBytes } = this.deps.session;
    return this.inflight.length < windowMessages && (this.inflight.length === 0 || this.inflightBytes < windowBytes);
  }

  private fits(bytes: number): boolean {
    const { windowMessages, windowBytes } = this.deps.session;
    return this.inflight.length < windowMessages && (this.inflight.length === 0 || this.inflightBytes + bytes <= windowBytes);
  }

  private socketFull(): boolean {
    return this.ws.bufferedAmount > this.deps.session.maxBufferedBytes;
  }

  private deliver(m: StoredMessage, fast: boolean): void {
    this.readPos = m.seq;
    if (m.receipt) this.receiptSeq = m.seq;
    this.inflight.push({ seq: m.seq, bytes: m.bytes });
    this.inflightBytes += m.bytes;
    this.sent++;
    if (!this.caughtUpSent) this.drained++;
    this.writeData(this.encoding === 'json' ? encodeMessageFrame(m) : packMessageFrame(m));
    this.deps.events.emit('delivered', { user: this.user, device: this.device, seq: m.seq, sentAt: m.sentAt, live: this.caughtUpSent, fast });
  }

  /** The safety poll (safety-poll.ts): read as a wake-up would, in case one was lost. */
  safetyRead(): void {
    if (this.state === 'live') this.pump();
  }

  /** While the bus cannot deliver wake-ups, read the store on a timer instead. */
  setPolling(on: boolean): void {
    if (on && !this.pollTimer && !this.isClosed()) {
      this.pollTimer = setInterval(() => this.pump(), this.deps.session.pollIntervalMs);
      this.pollTimer.unref();
    } else if (!on && this.pollTimer) {
      clearInterval(this.pollTimer);
      this.pollTimer = undefined;
      this.pump(); // catch up on wake-ups missed while the bus was down
    }
  }

  // ---- lifecycle ----------------------------------------------------------------

  private write(frame: ServerFrame): void {
    this.writeData(this.encoding === 'json' ? encodeFrame(frame) : packFrame(frame));
  }

  /**
   * Every outgoing frame goes through here. The first frame of a turn corks the socket
   * and schedules a flush for the end of the turn (process.nextTick runs after the
   * microtasks, so every `accepted` of one group commit, or every live message it woke,
   * shares the flush); the pump flushes after each page. Uncorking writes all the
   * frames with one writev: before, every frame was its own syscall.
   */
  private writeData(data: string | Buffer): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    if (!this.corked && this.socket) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(DeviceSession.flushTurn, this);
    }
    // A string goes as a text message, a Buffer (MessagePack) as a binary one. A write that
    // may take the buffer past its limit carries a callback: when it has reached the kernel,
    // a loop paused by backpressure (socketFull) reads on. The threshold is a third of the
    // limit because `length` undercounts UTF-8 bytes at most threefold, so any write after
    // which the buffer is full carries one. Writes below it need none (and cost none).
    const max = this.deps.session.maxBufferedBytes;
    if (this.ws.bufferedAmount + data.length > max / 3) this.ws.send(data, (this.afterWrite ??= this.resumeAfterWrite.bind(this)));
    else this.ws.send(data);
  }

  /** A write reached the socket: resume a loop paused by backpressure. */
  private resumeAfterWrite(err?: Error): void {
    if (err) return; // the close handler cleans up
    if (this.blockedBy === 'socket' && !this.socketFull()) this.pump();
  }

  /** Write out what is corked (a no-op when nothing is). */
  private flush(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket!.uncork();
  }

  /** The end of a turn with frames written (process.nextTick): one writev for all of them. */
  private static flushTurn(this: void, s: DeviceSession): void {
    s.flush();
  }

  isClosed(): boolean {
    return this.state === 'closed';
  }

  /** Heartbeat tick: ping a live connection, drop one silent for two intervals. */
  heartbeat(now: number): void {
    if (this.isClosed()) return;
    if (now - this.lastSeen > 2 * this.deps.session.heartbeatMs) {
      this.log.info('connection timed out');
      this.ws.terminate();
      return;
    }
    if (this.ws.readyState === this.ws.OPEN) this.ws.ping();
  }

  private fail(err: unknown, what: string): void {
    const e = toPoboxError(err);
    if (this.isClosed()) return;
    this.log.error({ code: e.code, err: e.message }, what);
    this.writeError(e);
    if (e.code === 'FORBIDDEN') this.close(CloseCode.FORBIDDEN, e.message.slice(0, 120));
    else this.close(CloseCode.INTERNAL, 'server error; reconnect with backoff');
  }

  /** Close the connection (the end is recorded when the socket reports it closed). */
  close(code: number, reason: string): void {
    if (this.isClosed()) return;
    this.teardown();
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) this.ws.close(code, reason);
  }

  private teardown(): void {
    this.moveTo('closed');
    clearTimeout(this.helloTimer);
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    const unsub = this.unsubscribe;
    this.unsubscribe = undefined;
    if (unsub) void unsub().catch((err: unknown) => this.log.warn({ err: String(err) }, 'unsubscribe failed'));
  }

  private ended = false;
  private onClosed(code: number, reason: string): void {
    if (!this.isClosed()) this.teardown();
    if (this.ended) return;
    this.ended = true;
    const durationMs = Date.now() - this.openedAt;
    this.log.info({ code, reason, durationMs, sent: this.sent, remote: this.remote }, 'connection closed');
    this.deps.events.emit('disconnect', { user: this.user, device: this.device, code, reason, durationMs, sent: this.sent });
    this.deps.onEnd(this);
  }
}

/**
 * The socket under a server-side `ws` connection (the one handed to handleUpgrade). ws
 * has no cork of its own; corking its socket makes ws's writes of several frames one
 * syscall. Undefined if a future ws hides it: frames are then written one by one.
 */
function socketOf(ws: WebSocket): Duplex | undefined {
  const socket = (ws as unknown as { _socket?: Duplex })._socket;
  return socket && typeof socket.cork === 'function' && typeof socket.uncork === 'function' ? socket : undefined;
}

/**
 * A random id (a UUID) as one flat string. randomUUID concatenates it from 20 pieces, and
 * V8 keeps such a string as a tree of a dozen pieces (about 400 bytes) for as long as it
 * lives: here, as long as the connection.
 */
export function flatRandomId(): string {
  return Buffer.from(randomUUID(), 'latin1').toString('latin1');
}

/** The session of each socket, for the listeners all sessions share. */
const sessionOf = new WeakMap<WebSocket, DeviceSession>();

function badRequest(message: string, field?: string, id?: string): FrameError {
  return new FrameError(new PoboxError('BAD_REQUEST', message, field === undefined ? undefined : { field }), id);
}

function errorOf(code: ErrorCode, message: string): PoboxError {
  return new PoboxError(code, message);
}
