/**
 * The pobox client: one device's connection to a pobox gateway, kept alive across
 * network failures. Runs in browsers and Node (it imports nothing Node-only).
 *
 * States (emitted as `state` events):
 *
 *   connecting ──welcome──▶ open ──caughtUp──▶ live
 *       ▲                    │                  │
 *       │          socket lost / timeout        │
 *       │                    ▼                  ▼
 *       └──backoff delay── reconnecting ◀───────┘
 *
 *   closed: terminal. Reached by close(), or when the server closes with REPLACED (4000),
 *   UNAUTHORIZED (4001) or FORBIDDEN (4003): retrying would only repeat the refusal (or
 *   fight the device's other connection), so the client stops and emits an error.
 *
 * The state changes only through nextClientState (state.ts: the table of allowed moves).
 *
 * On every socket open the client says `hello` with the epoch and the last seq it handed
 * to the application. Messages pass through one ordered queue: each is handed to the
 * `message` listeners once (a seq at or below the high-water mark is dropped), and in
 * auto-ack mode acked after the listeners return or their promises resolve. Acks are
 * cumulative and coalesced. Frames queued from a lost connection and not yet handed over
 * are discarded: the server sends them again after the device's cursor.
 *
 * Sends wait for `accepted` (the message is durable). A send not yet accepted when a
 * connection drops is written again on the next one with the same id; the server
 * dedupes on it, so it resolves with the original seq.
 *
 * With several URLs (gateway nodes of one deployment), each reconnect moves to the next.
 */
import { isErrorCode, PoboxError, type ErrorCode, closedError } from '../core/errors.js';
import { Packr } from 'msgpackr';
import { base64ToBytes, BASE64, bytesToBase64 } from '../core/bytes.js';
import { CloseCode, ENCODINGS, PROTOCOL_VERSION, type ClientFrame, type Encoding, type SendFrame, type ServerFrame, type WelcomeFrame } from '../core/protocol.js';
import { Backoff } from '../core/backoff.js';
import { DeliveryTracker } from './delivery.js';
import type { GapReason } from '../core/protocol.js';
import { TypedEmitter, type Listener } from '../core/emitter.js';
import { PendingSends } from './sends.js';
import { nextClientState } from './state.js';
import type {
  AckMode,
  ClientEvents,
  ClientMessage,
  EphemeralClientMessage,
  ClientOptions,
  GapEvent,
  ClientState,
  ClientStats,
  SendOptions,
  SendReceipt,
  StateChange,
  TokenSource,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';

const OPEN = 1;

/** Close codes after which reconnecting cannot help. */
const TERMINAL_CLOSE: ReadonlyMap<number, { code: ErrorCode; message: string }> = new Map([
  [CloseCode.REPLACED, { code: 'FORBIDDEN', message: 'another connection of this device replaced this one' }],
  [CloseCode.UNAUTHORIZED, { code: 'UNAUTHORIZED', message: 'the server refused the token (missing, expired or invalid)' }],
  [CloseCode.FORBIDDEN, { code: 'FORBIDDEN', message: 'the token is not allowed to connect' }],
]);

/** The error a client emits when the server ends the connection for good. */
export class ConnectionClosedError extends PoboxError {
  readonly closeCode: number;
  constructor(code: ErrorCode, message: string, closeCode: number) {
    super(code, message);
    this.closeCode = closeCode;
  }
}

type QueueItem = { kind: 'message'; message: ClientMessage } | { kind: 'caughtUp'; seq: number } | { kind: 'gap'; gap: GapEvent };

interface Connection {
  id: number;
  socket: WebSocketLike;
  url: string;
  welcomed: boolean;
  lastFrameAt: number;
  /** An error frame the server sent before closing a connection it refused (reported with the close). */
  refusal?: PoboxError;
}

export class PoboxClient {
  private readonly urls: readonly string[];
  private readonly token: TokenSource;
  private readonly WebSocketImpl: WebSocketConstructor;
  private readonly ackMode: AckMode;
  private readonly opts: Required<Omit<ClientOptions, 'WebSocket' | 'ack' | 'resume' | 'random' | 'pingIntervalMs'>> & { pingIntervalMs: number | undefined };
  private readonly packr: Packr | undefined;
  private readonly emitter: TypedEmitter<ClientEvents>;
  private readonly backoff: Backoff;
  private readonly delivery: DeliveryTracker;
  private readonly sends = new PendingSends();

  private currentState: ClientState = 'connecting';
  private urlIndex = 0;
  private connSeq = 0;
  private conn: Connection | undefined;
  private queue: QueueItem[] = [];
  private pumping = false;
  private windowMessages = 256;

  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private ackTimer: ReturnType<typeof setTimeout> | undefined;
  /** An ack is due at the end of the current burst of frames (ackDelayMs 0). */
  private ackAtBurstEnd = false;
  private readonly counters: ClientStats = { received: 0, delivered: 0, duplicatesDropped: 0, acksSent: 0, serverCursor: 0, reconnects: 0 };

  constructor(urls: string | readonly string[], token: TokenSource, options: ClientOptions = {}) {
    this.urls = typeof urls === 'string' ? [urls] : [...urls];
    if (this.urls.length === 0) throw new PoboxError('BAD_REQUEST', 'connect: at least one URL is required', { field: 'url' });
    for (const url of this.urls) toSocketUrl(url, 'x'); // fail fast on a malformed URL
    if (typeof token !== 'function' && (typeof token !== 'string' || token.length === 0)) {
      throw new PoboxError('BAD_REQUEST', 'connect: a token is required', { field: 'token' });
    }
    this.token = token;
    const impl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!impl) {
      throw new PoboxError('BAD_REQUEST', "connect: no WebSocket implementation; in Node 20 pass { WebSocket } from the 'ws' package", { field: 'WebSocket' });
    }
    this.WebSocketImpl = impl;
    this.ackMode = options.ack ?? 'auto';
    this.opts = {
      ackDelayMs: options.ackDelayMs ?? 0,
      backoffBaseMs: options.backoffBaseMs ?? 300,
      backoffMaxMs: options.backoffMaxMs ?? 30_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      pingIntervalMs: options.pingIntervalMs,
      sendTimeoutMs: options.sendTimeoutMs ?? 0,
      encoding: options.encoding ?? 'json',
    };
    if (!(ENCODINGS as readonly string[]).includes(this.opts.encoding)) {
      throw new PoboxError('BAD_REQUEST', `connect: encoding must be one of ${ENCODINGS.join(', ')}`, { field: 'encoding' });
    }
    // Plain maps, bytes as bin values: what the server writes and reads.
    this.packr = this.opts.encoding === 'msgpack' ? new Packr({ useRecords: false, moreTypes: false }) : undefined;
    this.backoff = new Backoff({ baseMs: this.opts.backoffBaseMs, maxMs: this.opts.backoffMaxMs }, options.random);
    this.delivery = new DeliveryTracker(options.resume);
    this.emitter = new TypedEmitter<ClientEvents>((err, event) => {
      // A throwing error listener is reported to the platform instead of looping.
      if (event === 'error')
        queueMicrotask(() => {
          throw err;
        });
      else this.emitError(toError(err, 'INTERNAL', `a '${String(event)}' listener threw`));
    });
    // Start on the next tick so listeners attached right after connect() see every event.
    queueMicrotask(() => this.reopen());
  }

  // ---- public API ------------------------------------------------------------------

  get state(): ClientState {
    return this.currentState;
  }

  /** Where the application is: persist it and pass it as `resume` to skip what it has seen. */
  get position(): { epoch: string; lastSeq: number } | undefined {
    return this.delivery.epoch === undefined ? undefined : { epoch: this.delivery.epoch, lastSeq: this.delivery.handed };
  }

  get stats(): Readonly<ClientStats> {
    return { ...this.counters };
  }

  /** The URL of the current (or last) connection. */
  get url(): string | undefined {
    return this.conn?.url;
  }

  on<K extends keyof ClientEvents>(event: K, listener: Listener<ClientEvents[K]>): () => void {
    return this.emitter.on(event, listener);
  }

  once<K extends keyof ClientEvents>(event: K, listener: Listener<ClientEvents[K]>): () => void {
    return this.emitter.once(event, listener);
  }

  off<K extends keyof ClientEvents>(event: K, listener: Listener<ClientEvents[K]>): void {
    this.emitter.off(event, listener);
  }

  /** Resolves when the server has welcomed this client (state open or live); rejects if it closes first. */
  ready(): Promise<void> {
    if (this.currentState === 'open' || this.currentState === 'live') return Promise.resolve();
    if (this.currentState === 'closed') return Promise.reject(closedError('client'));
    return new Promise((resolve, reject) => {
      const off = this.emitter.on('state', ({ state }) => {
        if (state === 'open' || state === 'live') {
          off();
          resolve();
        } else if (state === 'closed') {
          off();
          reject(new PoboxError('UNAVAILABLE', 'client closed before it was welcomed'));
        }
      });
    });
  }

  /**
   * Send a message. Resolves once the server has stored it durably; rejects with a
   * PoboxError carrying the server's code, or UNAVAILABLE on timeout or close().
   */
  send(input: SendOptions): Promise<SendReceipt> {
    if (this.currentState === 'closed') return Promise.reject(closedError('client'));
    const bad = checkSend(input);
    if (bad) return Promise.reject(bad);
    const frame: SendFrame = { type: 'send', id: input.id ?? newId(), to: Array.isArray(input.to) ? [...input.to] : input.to, body: input.body };
    if (typeof input.body !== 'string') frame.body = new Uint8Array(input.body); // a copy: the bytes as they are now, for every resend
    if (input.toDevice !== undefined) frame.toDevice = input.toDevice;
    if (input.ttlSeconds !== undefined) frame.ttlSeconds = input.ttlSeconds;
    if (input.receipt !== undefined) frame.receipt = input.receipt;
    if (input.ephemeral) frame.ephemeral = true;
    const { promise, isNew } = this.sends.add(frame, input.timeoutMs ?? this.opts.sendTimeoutMs, this.encodeSend);
    const conn = this.conn;
    if (isNew && conn?.welcomed && conn.socket.readyState === OPEN) {
      const data = this.sends.dataOf(frame.id);
      if (data !== undefined) {
        conn.socket.send(data);
        this.sends.markWritten(frame.id, conn.id);
      }
    }
    return promise;
  }

  /** A send frame as this client's encoding writes it: JSON (bytes as base64 with `binary: true`) or MessagePack (raw bytes). */
  private readonly encodeSend = (frame: SendFrame): string | Uint8Array => {
    if (this.packr) return this.packr.pack(frame);
    return typeof frame.body === 'string' ? JSON.stringify(frame) : JSON.stringify({ ...frame, body: bytesToBase64(frame.body), binary: true });
  };

  /** Manual-ack mode: the application is done with every message up to and including `seq`. */
  ack(seq: number): void {
    if (this.ackMode !== 'manual') throw new PoboxError('BAD_REQUEST', "ack() is for clients connected with { ack: 'manual' }", { field: 'seq' });
    if (!Number.isSafeInteger(seq) || seq < 0) throw new PoboxError('BAD_REQUEST', 'ack: seq must be a non-negative integer', { field: 'seq' });
    if (seq > this.delivery.handed) throw new PoboxError('BAD_REQUEST', `ack: seq ${seq} has not been delivered yet`, { field: 'seq' });
    this.delivery.confirm(seq);
    this.scheduleAck();
  }

  /** Stop for good: close the socket, reject unfinished sends, clear every timer. */
  close(): void {
    if (this.currentState === 'closed') return;
    // Hand the server what the application already finished, so it is not sent again.
    this.flushAck();
    this.shutdown(CloseCode.NORMAL, 'client closed');
    this.sends.rejectAll(new PoboxError('UNAVAILABLE', 'client closed before the send was accepted'));
    this.setState({ state: 'closed', closeCode: CloseCode.NORMAL, reason: 'client closed' });
  }

  // ---- connection lifecycle ---------------------------------------------------------

  /** open() reports its own failures; what escapes it is a bug, reported as an error event. */
  private reopen(): void {
    this.open().catch((err: unknown) => this.emitError(toError(err, 'INTERNAL', 'opening a connection failed')));
  }

  private async open(): Promise<void> {
    if (this.currentState === 'closed') return;
    const url = this.urls[this.urlIndex % this.urls.length]!;
    let token: string;
    try {
      token = typeof this.token === 'function' ? await this.token() : this.token;
    } catch (err) {
      this.emitError(toError(err, 'UNAUTHORIZED', 'token function failed'));
      this.scheduleReconnect();
      return;
    }
    if (this.isClosed()) return;
    this.setState({ state: 'connecting', url });
    if (this.isClosed()) return; // a state listener closed us
    let socket: WebSocketLike;
    try {
      socket = new this.WebSocketImpl(toSocketUrl(url, token, this.opts.encoding));
      if (this.packr) socket.binaryType = 'arraybuffer';
    } catch (err) {
      this.emitError(toError(err, 'UNAVAILABLE', `cannot open ${url}`));
      this.scheduleReconnect();
      return;
    }
    const conn: Connection = { id: ++this.connSeq, socket, url, welcomed: false, lastFrameAt: Date.now() };
    if (conn.id > 1) this.counters.reconnects++;
    this.conn = conn;
    socket.onopen = () => {
      if (this.conn !== conn) return;
      const hello: ClientFrame = { type: 'hello', protocol: PROTOCOL_VERSION };
      if (this.delivery.epoch !== undefined) {
        hello.epoch = this.delivery.epoch;
        hello.lastSeq = this.delivery.handed;
      }
      socket.send(JSON.stringify(hello));
    };
    socket.onmessage = (event: { data: unknown }) => {
      if (this.conn === conn) this.onFrame(conn, event.data);
    };
    socket.onclose = (event: { code?: number; reason?: string }) => {
      if (this.conn === conn) this.onDrop(conn, event.code ?? 1006, event.reason ?? '');
    };
    // Errors are always followed by a close event; the close decides what happens next.
    socket.onerror = () => undefined;
    this.connectTimer = setTimeout(() => {
      if (this.conn === conn && !conn.welcomed) this.abandon(conn, 'no welcome within connectTimeoutMs');
    }, this.opts.connectTimeoutMs);
  }

  private onFrame(conn: Connection, data: unknown): void {
    conn.lastFrameAt = Date.now();
    let frame: ServerFrame;
    try {
      if (typeof data === 'string') frame = JSON.parse(data) as ServerFrame;
      else if (this.packr && (data instanceof ArrayBuffer || data instanceof Uint8Array))
        frame = this.packr.unpack(data instanceof ArrayBuffer ? new Uint8Array(data) : data) as ServerFrame;
      else frame = JSON.parse(String(data)) as ServerFrame;
    } catch {
      this.emitError(new PoboxError('BAD_REQUEST', `server sent a frame that is not ${this.packr ? 'MessagePack or ' : ''}JSON`));
      return;
    }
    switch (frame?.type) {
      case 'welcome':
        // One welcome per connection; a second one would be a server bug, not a new state.
        if (conn.welcomed) this.emitError(new PoboxError('BAD_REQUEST', 'server sent a second welcome on one connection'));
        else this.onWelcome(conn, frame);
        return;
      case 'message': {
        const body = bodyOf(frame);
        if (!Number.isSafeInteger(frame.seq) || body === undefined) {
          this.emitError(new PoboxError('BAD_REQUEST', 'server sent a malformed message frame'));
          return;
        }
        this.counters.received++;
        const message: ClientMessage = { seq: frame.seq, id: frame.id, from: frame.from, body, sentAt: frame.sentAt, expiresAt: frame.expiresAt };
        if (frame.toDevice !== undefined) message.toDevice = frame.toDevice;
        if (frame.receipt !== undefined) message.receipt = frame.receipt;
        this.enqueue({ kind: 'message', message });
        return;
      }
      case 'ephemeral': {
        // Not stored, not acked, not in seq order: handed over at once, never queued.
        const body = bodyOf(frame);
        if (body === undefined || typeof frame.id !== 'string') {
          this.emitError(new PoboxError('BAD_REQUEST', 'server sent a malformed ephemeral frame'));
          return;
        }
        const e: EphemeralClientMessage = { id: frame.id, from: frame.from, body, sentAt: frame.sentAt };
        if (frame.toDevice !== undefined) e.toDevice = frame.toDevice;
        this.emitter.emit('ephemeral', e);
        return;
      }
      case 'caughtUp':
        // The backlog's gap notice comes before caughtUp: it is about messages of the backlog.
        if (frame.gap !== undefined) this.onGap(frame.gap);
        this.enqueue({ kind: 'caughtUp', seq: frame.seq });
        return;
      case 'gap':
        this.onGap(frame);
        return;
      case 'accepted':
        this.sends.accepted(
          frame.id,
          frame.seq,
          frame.duplicate === true,
          frame.ephemeral ? { reached: frame.reached ?? 0 } : Array.isArray(frame.results) ? { results: frame.results } : {},
        );
        return;
      case 'error': {
        const code: ErrorCode = isErrorCode(frame.code) ? frame.code : 'INTERNAL';
        const err = new PoboxError(code, String(frame.message ?? code), frame.field === undefined ? undefined : { field: frame.field });
        if (frame.id !== undefined && this.sends.failed(frame.id, err)) return;
        // Before the welcome an error explains the close that follows: report them once, together.
        if (!conn.welcomed) conn.refusal = err;
        else this.emitError(err);
        return;
      }
      case 'acked':
        if (Number.isSafeInteger(frame.cursor)) this.counters.serverCursor = frame.cursor;
        return;
      case 'pong':
        return; // lastFrameAt already proves the connection alive
      default:
        // A newer server may add frames; ignoring them keeps old clients working.
        return;
    }
  }

  private onGap(notice: unknown): void {
    const gap = gapOf(notice);
    if (gap) this.enqueue({ kind: 'gap', gap });
    else this.emitError(new PoboxError('BAD_REQUEST', 'server sent a malformed gap notice'));
  }

  private onWelcome(conn: Connection, welcome: WelcomeFrame): void {
    conn.welcomed = true;
    this.clearConnectTimer();
    this.backoff.reset();
    this.delivery.welcome(welcome.epoch, welcome.epochChanged === true, welcome.cursor ?? 0);
    this.counters.serverCursor = welcome.cursor ?? 0;
    if (welcome.window?.messages) this.windowMessages = welcome.window.messages;
    this.setState({ state: 'open', url: conn.url });
    if (this.conn !== conn) return; // a state listener closed us
    for (const text of this.sends.toWrite(conn.id)) conn.socket.send(text);
    // The application may have finished messages while we were away; their ack can go now.
    this.scheduleAck();
    this.startPing(conn, welcome.heartbeatMs);
  }

  private onDrop(conn: Connection, closeCode: number, reason: string): void {
    this.detach(conn);
    this.conn = undefined;
    // Not yet handed over: the server sends these again after the device's cursor.
    this.queue = [];
    if (closeCode === CloseCode.TOO_BIG) {
      // The server cannot say which frame was too big; the largest send is the likely one,
      // and writing it again would only repeat the close.
      const id = this.sends.largestWrittenOn(conn.id);
      if (id !== undefined) this.sends.failed(id, new PoboxError('PAYLOAD_TOO_LARGE', `send ${id} exceeded the server's frame size limit`));
    }
    const terminal = TERMINAL_CLOSE.get(closeCode);
    if (terminal) {
      const detail = conn.refusal?.message ?? reason;
      const err = new ConnectionClosedError(terminal.code, `${terminal.message}${detail ? ` (${detail})` : ''}`, closeCode);
      this.shutdown();
      this.sends.rejectAll(err);
      this.setState({ state: 'closed', closeCode, reason });
      this.emitError(err);
      return;
    }
    if (conn.refusal) this.emitError(conn.refusal);
    this.scheduleReconnect(closeCode, reason);
  }

  /** Give up on a socket that went quiet: stop listening to it and reconnect now. */
  private abandon(conn: Connection, why: string): void {
    this.detach(conn);
    try {
      conn.socket.close(CloseCode.NORMAL, why);
    } catch {
      // already closing
    }
    this.onDrop(conn, 1006, why);
  }

  private scheduleReconnect(closeCode?: number, reason?: string): void {
    if (this.currentState === 'closed') return;
    this.urlIndex = (this.urlIndex + 1) % this.urls.length;
    const step = this.backoff.next();
    const change: Omit<StateChange, 'previous'> = { state: 'reconnecting', attempt: step.attempt, ceilingMs: step.ceilingMs, delayMs: step.delayMs };
    if (closeCode !== undefined) change.closeCode = closeCode;
    if (reason) change.reason = reason;
    this.setState(change);
    if (this.currentState !== 'reconnecting') return; // a state listener closed us
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.reopen();
    }, step.delayMs);
  }

  private startPing(conn: Connection, heartbeatMs: number | undefined): void {
    const interval = this.opts.pingIntervalMs ?? (heartbeatMs && heartbeatMs > 0 ? Math.max(1000, Math.floor(heartbeatMs / 2)) : 0);
    if (interval <= 0) return;
    this.clearPing();
    this.pingTimer = setInterval(() => {
      if (this.conn !== conn) return;
      // Two intervals without a single frame back: the path is dead even if TCP has not noticed.
      if (Date.now() - conn.lastFrameAt > 2 * interval + 1000) {
        this.abandon(conn, 'keepalive timeout');
        return;
      }
      if (conn.socket.readyState === OPEN) conn.socket.send(JSON.stringify({ type: 'ping', t: Date.now() }));
    }, interval);
  }

  // ---- delivery ---------------------------------------------------------------------

  private enqueue(item: QueueItem): void {
    this.queue.push(item);
    if (!this.pumping) this.pump().catch((err: unknown) => this.emitError(toError(err, 'INTERNAL', 'handing messages to the application failed')));
  }

  /** Hand queued frames to the application one at a time, in order. */
  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.queue.length > 0) {
        const item = this.queue.shift()!;
        if (item.kind === 'caughtUp') {
          this.emitter.emit('caughtUp', { seq: item.seq });
          if (this.currentState === 'open') this.setState({ state: 'live', url: this.conn?.url ?? '' });
          continue;
        }
        if (item.kind === 'gap') {
          await this.handOverGap(item.gap);
          continue;
        }
        const { message } = item;
        if (this.delivery.offer(message.seq) === 'duplicate') {
          this.counters.duplicatesDropped++;
          this.scheduleAck();
          continue;
        }
        this.counters.delivered++;
        const generation = this.delivery.generation;
        const pending = this.emitter.emitAndCollect('message', message);
        if (pending.length > 0) {
          const results = await Promise.allSettled(pending);
          for (const r of results) if (r.status === 'rejected') this.emitError(toError(r.reason, 'INTERNAL', `message handler failed for seq ${message.seq}`));
        }
        if (this.ackMode === 'auto') {
          // A handler that failed still counts as handed over: the SDK shows each message once.
          this.delivery.confirm(message.seq, generation);
          this.scheduleAck();
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  /**
   * A gap notice, in order with the messages: every message of this device up to `to`
   * that is still stored came before it, so once the `gap` listeners are done the
   * application has passed `to`, and in auto-ack mode the ack moves there (which clears
   * the notice on the server). A notice this client already emitted (the same one again
   * after a reconnect, before its ack was committed) is not emitted again.
   */
  private async handOverGap(gap: GapEvent): Promise<void> {
    const generation = this.delivery.generation;
    if (this.delivery.gap(gap.to) === 'new') {
      const pending = this.emitter.emitAndCollect('gap', gap);
      if (pending.length > 0) {
        const results = await Promise.allSettled(pending);
        for (const r of results) if (r.status === 'rejected') this.emitError(toError(r.reason, 'INTERNAL', `gap handler failed for seqs ${gap.from}..${gap.to}`));
      }
    }
    if (this.ackMode === 'auto') this.delivery.confirm(gap.to, generation);
    this.scheduleAck();
  }

  /**
   * Ack cadence, chosen with the server's window (docs/protocol.md "Flow control"): one
   * cumulative ack when a quarter of the window is waiting, so the server always has
   * three quarters left to send while the ack travels (a drain is bound by bytes, not by
   * ack round trips), and one at the end of each burst of frames, so a short burst or a
   * single live message is acked at once without one ack per message.
   */
  private scheduleAck(): void {
    if (this.currentState === 'closed' || this.delivery.ackDue() === undefined) return;
    if (this.delivery.unackedCount >= Math.max(1, Math.floor(this.windowMessages / 4))) {
      this.flushAck();
      return;
    }
    if (this.opts.ackDelayMs > 0) {
      if (this.ackTimer !== undefined) return;
      this.ackTimer = setTimeout(() => {
        this.ackTimer = undefined;
        this.flushAck();
      }, this.opts.ackDelayMs);
      return;
    }
    if (this.ackAtBurstEnd) return;
    this.ackAtBurstEnd = true;
    afterBurst(() => {
      if (this.ackAtBurstEnd) this.flushAck();
    });
  }

  private flushAck(): void {
    this.ackAtBurstEnd = false;
    if (this.ackTimer !== undefined) {
      clearTimeout(this.ackTimer);
      this.ackTimer = undefined;
    }
    const conn = this.conn;
    const upTo = this.delivery.ackDue();
    if (upTo === undefined || !conn?.welcomed || conn.socket.readyState !== OPEN) return;
    conn.socket.send(JSON.stringify({ type: 'ack', upTo }));
    this.delivery.ackSent(upTo);
    this.counters.acksSent++;
  }

  // ---- plumbing ---------------------------------------------------------------------

  /** A method, not a field read, so TypeScript does not narrow it away across awaits and callbacks. */
  private isClosed(): boolean {
    return this.currentState === 'closed';
  }

  /** The one way the state changes: a move the table does not allow throws, every other is announced. */
  private setState(change: Omit<StateChange, 'previous'>): void {
    const previous = this.currentState;
    this.currentState = nextClientState(previous, change.state);
    this.emitter.emit('state', { ...change, previous });
  }

  private emitError(err: PoboxError): void {
    this.emitter.emit('error', err);
  }

  private detach(conn: Connection): void {
    conn.socket.onopen = null;
    conn.socket.onmessage = null;
    conn.socket.onclose = null;
    // Keep a no-op error handler: `ws` throws on an 'error' with no listener.
    conn.socket.onerror = () => undefined;
    this.clearConnectTimer();
    this.clearPing();
  }

  /** Stop every timer and close the socket. */
  private shutdown(code?: number, reason?: string): void {
    const conn = this.conn;
    this.conn = undefined;
    if (conn) {
      this.detach(conn);
      try {
        conn.socket.close(code, reason);
      } catch {
        // already closed
      }
    }
    this.queue = [];
    for (const timer of [this.reconnectTimer, this.ackTimer]) if (timer !== undefined) clearTimeout(timer);
    this.reconnectTimer = undefined;
    this.ackTimer = undefined;
    this.ackAtBurstEnd = false;
    this.clearConnectTimer();
    this.clearPing();
  }

  private clearConnectTimer(): void {
    if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
  }

  private clearPing(): void {
    if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
  }
}

/**
 * Run `fn` once the frames that arrived together have all been handled: in Node after
 * the current I/O callbacks (setImmediate: every frame of one socket read is handled
 * before it), in browsers on the next task (each WebSocket message is its own task, and
 * timers run after the queued ones).
 */
const afterBurst: (fn: () => void) => void =
  typeof (globalThis as { setImmediate?: unknown }).setImmediate === 'function'
    ? (fn) => {
        (globalThis as unknown as { setImmediate: (f: () => void) => void }).setImmediate(fn);
      }
    : (fn) => {
        setTimeout(fn, 0);
      };

/**
 * ws:// or wss:// URL with the token as the `token` query parameter (http(s) URLs are
 * accepted too), and `encoding=msgpack` for a MessagePack connection.
 */
export function toSocketUrl(url: string, token: string, encoding: Encoding = 'json'): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new PoboxError('BAD_REQUEST', `connect: not a URL: ${url}`, { field: 'url' });
  }
  if (parsed.protocol === 'http:') parsed.protocol = 'ws:';
  else if (parsed.protocol === 'https:') parsed.protocol = 'wss:';
  else if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    throw new PoboxError('BAD_REQUEST', `connect: URL must be ws://, wss://, http:// or https://: ${url}`, { field: 'url' });
  }
  parsed.searchParams.set('token', token);
  if (encoding !== 'json') parsed.searchParams.set('encoding', encoding);
  return parsed.toString();
}

/**
 * The body of a message or ephemeral frame as the application gets it: text, or a plain
 * Uint8Array (from base64 marked `binary: true` in JSON, or raw bytes in MessagePack).
 * Undefined when the frame's body is malformed.
 */
function bodyOf(frame: { body: unknown; binary?: unknown }): string | Uint8Array | undefined {
  const { body } = frame;
  if (body instanceof Uint8Array) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  if (typeof body !== 'string') return undefined;
  if (frame.binary !== true) return body;
  return BASE64.test(body) ? base64ToBytes(body) : undefined;
}

/** A gap notice from the server as the application gets it; undefined when malformed. */
function gapOf(v: unknown): GapEvent | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const { from, to, count, reasons } = v as Record<string, unknown>;
  const seq = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
  if (!seq(from) || !seq(to) || !seq(count) || from > to || !Array.isArray(reasons)) return undefined;
  return { from, to, count, reasons: reasons.filter((r): r is GapReason => r === 'expired' || r === 'purged') };
}

function checkSend(input: SendOptions): PoboxError | undefined {
  if (typeof input !== 'object' || input === null) return new PoboxError('BAD_REQUEST', 'send: expected an object');
  const to = input.to;
  const isId = (v: unknown): boolean => typeof v === 'string' && v.length > 0;
  if (Array.isArray(to) ? to.length === 0 || !to.every(isId) : !isId(to)) {
    return new PoboxError('BAD_REQUEST', 'send: to must be a user id or a non-empty list of user ids', { field: 'to' });
  }
  if (typeof input.body !== 'string' && !(input.body instanceof Uint8Array)) return new PoboxError('BAD_REQUEST', 'send: body must be a string or a Uint8Array', { field: 'body' });
  if (input.id !== undefined && (typeof input.id !== 'string' || input.id.length === 0)) {
    return new PoboxError('BAD_REQUEST', 'send: id must be a non-empty string', { field: 'id' });
  }
  return undefined;
}

function newId(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (c?.randomUUID) return c.randomUUID();
  // Insecure contexts in old browsers lack randomUUID; 128 random bits in hex do the job.
  let out = '';
  for (let i = 0; i < 32; i++) out += Math.floor(Math.random() * 16).toString(16);
  return out;
}

function toError(err: unknown, code: ErrorCode, context: string): PoboxError {
  if (err instanceof PoboxError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new PoboxError(code, `${context}: ${detail}`, { cause: err });
}
