/**
 * One device of the soak: a raw WebSocket client that stays connected (reconnecting when
 * told to or when dropped), sends messages to other users at its pace, acks what it gets
 * (at once, or late when it plays a slow reader that stops reading its socket), and keeps
 * the books the soak checks at the end:
 *
 * - every seq it received, to find messages never delivered (lost);
 * - seqs received twice on one connection (duplicated; a redelivery after a reconnect of
 *   something not yet acked is allowed by the protocol and not counted);
 * - seqs received on one connection below one received before on it (out of order);
 * - its sends: each is resent with the same id after a reconnect until `accepted` comes,
 *   so the sender-side books hold exactly one seq per message.
 */
import WebSocket from 'ws';

export interface SoakBooks {
  /** Every accepted send: recipient user -> seqs. */
  accepted: Map<string, Set<number>>;
  /** Counters for the samples. */
  sent: number;
  acceptedCount: number;
  duplicateAccepts: number;
  errors: Record<string, number>;
}

export class SoakDevice {
  /** Seqs received on any connection (for the lost check). */
  readonly received = new Set<number>();
  /** Seqs received twice within one connection. */
  duplicates = 0;
  /** Seqs received below an earlier one on the same connection. */
  outOfOrder = 0;
  /** Message frames received, redeliveries on a new connection included. */
  messageFrames = 0;
  /** The highest seq this device acked and the server confirmed (`acked`). */
  ackedCursor = 0;
  connections = 0;
  /** Resolves at the first welcome (the device is registered and subscribed). */
  readonly welcomed: Promise<void>;
  private markWelcomed: () => void = () => undefined;
  private ws: WebSocket | undefined;
  private onThisConnection = new Set<number>();
  private lastOnThisConnection = 0;
  private highestSeen = 0;
  private slowUntil = 0;
  private stopped = false;
  /** Sends not yet accepted: id -> frame. Resent after every reconnect. */
  private readonly unanswered = new Map<string, { id: string; to: string; body: string }>();
  private nextId = 0;
  private ackTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly user: string,
    readonly device: string,
    private wsUrl: string,
    private readonly token: () => Promise<string>,
    private readonly books: SoakBooks,
  ) {
    this.welcomed = new Promise((resolve) => (this.markWelcomed = resolve));
  }

  get open(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  get pendingSends(): number {
    return this.unanswered.size;
  }

  async connect(): Promise<void> {
    if (this.stopped) return;
    const ws = new WebSocket(this.wsUrl, { headers: { authorization: `Bearer ${await this.token()}` } });
    this.ws = ws;
    this.onThisConnection = new Set();
    this.lastOnThisConnection = 0;
    ws.on('open', () => {
      this.connections++;
      ws.send(JSON.stringify({ type: 'hello', protocol: 1 }));
    });
    ws.on('message', (raw) => this.onFrame(ws, JSON.parse(raw.toString()) as Record<string, unknown>));
    ws.on('error', () => undefined);
    ws.on('close', (code) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      if (code !== 1000 && code !== 4000) this.bump(`close ${code}`);
      // Dropped (not by us): come back after a short pause, as a real client would.
      if (!this.stopped) setTimeout(() => this.reconnectLater(), 200 + Math.random() * 800).unref();
    });
  }

  /** Close and open again at once: the next connection drains what was not acked. */
  reconnect(): void {
    const ws = this.ws;
    if (!ws) return;
    this.ws = undefined;
    ws.close(1000);
    this.reconnectLater();
  }

  /** Move to another node: close this connection and open one to `wsUrl` (it drains what was not acked). */
  moveTo(wsUrl: string): void {
    this.wsUrl = wsUrl;
    this.reconnect();
  }

  /** The node this device is (or will next be) connected to. */
  get url(): string {
    return this.wsUrl;
  }

  /** A failed connect (token or socket set-up) is counted like any other problem; the next reconnect tries again. */
  private reconnectLater(): void {
    this.connect().catch((err: unknown) => this.bump(`connect failed: ${err instanceof Error ? err.message : String(err)}`));
  }

  /** Stop reading the socket for `ms` (the server's send buffer fills; acks stop). */
  slowDown(ms: number): void {
    this.slowUntil = Date.now() + ms;
    const socket = (this.ws as unknown as { _socket?: { pause(): void; resume(): void } } | undefined)?._socket;
    if (!socket) return;
    socket.pause();
    setTimeout(() => {
      socket.resume();
      this.scheduleAck(0);
    }, ms).unref();
  }

  send(to: string): void {
    const id = `${this.user}.${this.device}.${this.nextId++}`;
    const frame = { id, to, body: `soak ${id} ${'x'.repeat(Math.floor(Math.random() * 200))}` };
    this.unanswered.set(id, frame);
    this.books.sent++;
    this.write({ type: 'send', ...frame });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.ackTimer);
    const ws = this.ws;
    this.ws = undefined;
    if (!ws) return;
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.close(1000);
      setTimeout(() => {
        ws.terminate();
        resolve();
      }, 5000).unref();
    });
  }

  private write(frame: object): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  private bump(key: string): void {
    this.books.errors[key] = (this.books.errors[key] ?? 0) + 1;
  }

  private onFrame(ws: WebSocket, f: Record<string, unknown>): void {
    if (ws !== this.ws) return;
    switch (f['type']) {
      case 'welcome':
        this.markWelcomed();
        // Anything sent before but never answered goes again, with the same id (dedupe).
        for (const frame of this.unanswered.values()) this.write({ type: 'send', ...frame });
        return;
      case 'message': {
        const seq = f['seq'] as number;
        this.messageFrames++;
        if (this.onThisConnection.has(seq)) this.duplicates++;
        else if (seq < this.lastOnThisConnection) this.outOfOrder++;
        this.onThisConnection.add(seq);
        this.lastOnThisConnection = Math.max(this.lastOnThisConnection, seq);
        this.received.add(seq);
        this.highestSeen = Math.max(this.highestSeen, seq);
        this.scheduleAck(Date.now() < this.slowUntil ? this.slowUntil - Date.now() : 20);
        return;
      }
      case 'accepted': {
        const id = f['id'] as string;
        const frame = this.unanswered.get(id);
        if (!frame) return;
        this.unanswered.delete(id);
        if (f['duplicate']) this.books.duplicateAccepts++;
        this.books.acceptedCount++;
        let seqs = this.books.accepted.get(frame.to);
        if (!seqs) this.books.accepted.set(frame.to, (seqs = new Set()));
        seqs.add(f['seq'] as number);
        return;
      }
      case 'acked':
        this.ackedCursor = Math.max(this.ackedCursor, f['cursor'] as number);
        return;
      case 'error':
        this.bump(`error ${String(f['code'])}`);
        return;
      default:
        return;
    }
  }

  /** Acks are cumulative: one ack for the highest seq seen, shortly after the last message. */
  private scheduleAck(delayMs: number): void {
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      if (this.highestSeen > this.ackedCursor) this.write({ type: 'ack', upTo: this.highestSeen });
    }, delayMs);
    this.ackTimer.unref();
  }
}
