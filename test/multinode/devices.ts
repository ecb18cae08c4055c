/**
 * Test devices for the multi-node tests: an SDK client whose sockets the test can cut
 * (to force a move to the next node), and a raw WebSocket speaking frames directly.
 */
import { WebSocket } from 'ws';
import { connect, type ClientMessage, type PoboxClient, type PoboxError } from '../../src/client/index.js';
import type { ServerFrame } from '../../src/core/protocol.js';
import { waitFor } from '../bus/bus-helpers.js';

export { waitFor };

/** An SDK client (auto-ack) that records what the application is handed. */
export class Device {
  readonly client: PoboxClient;
  readonly messages: ClientMessage[] = [];
  readonly errors: PoboxError[] = [];
  /** Every URL the client was welcomed on, in order. */
  readonly nodes: string[] = [];
  caughtUp = 0;
  private readonly sockets: WebSocket[] = [];

  constructor(urls: readonly string[], token: string) {
    const sockets = this.sockets;
    // The SDK takes any WebSocket constructor; this one remembers its sockets so the test can cut them.
    class TrackedWebSocket extends WebSocket {
      constructor(url: string) {
        super(url);
        sockets.push(this);
      }
    }
    this.client = connect(urls, token, { WebSocket: TrackedWebSocket, backoffBaseMs: 50, backoffMaxMs: 500, connectTimeoutMs: 5000 });
    this.client.on('message', (m) => {
      this.messages.push(m);
    });
    this.client.on('caughtUp', () => {
      this.caughtUp++;
    });
    this.client.on('error', (e) => {
      this.errors.push(e);
    });
    this.client.on('state', (s) => {
      if (s.state === 'open' && s.url) this.nodes.push(s.url);
    });
  }

  /** Cut the current connection abruptly (as a network failure would); the SDK reconnects to its next URL. */
  cut(): void {
    this.sockets.at(-1)?.terminate();
  }

  async waitCaughtUp(n = 1, timeoutMs = 15_000): Promise<void> {
    await waitFor(() => this.caughtUp >= n, `caughtUp #${n}`, timeoutMs);
  }

  async waitMessages(n: number, timeoutMs = 30_000): Promise<void> {
    await waitFor(() => this.messages.length >= n, `${n} messages (have ${this.messages.length})`, timeoutMs);
  }

  close(): void {
    this.client.close();
  }
}

/** A device speaking raw protocol frames, for checks at the wire level. */
export class RawDevice {
  readonly frames: ServerFrame[] = [];
  private ws: WebSocket | undefined;
  private closed: Promise<void> = Promise.resolve();

  async open(wsUrl: string, token: string, hello: { epoch?: string; lastSeq?: number } = {}): Promise<void> {
    const u = new URL(wsUrl);
    u.searchParams.set('token', token);
    const ws = new WebSocket(u.toString());
    this.ws = ws;
    this.closed = new Promise((resolve) => ws.once('close', () => resolve()));
    ws.on('message', (data) => this.frames.push(JSON.parse(String(data)) as ServerFrame));
    ws.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.send(JSON.stringify({ type: 'hello', protocol: 1, ...hello }));
  }

  send(frame: object): void {
    this.ws?.send(JSON.stringify(frame));
  }

  of<T extends ServerFrame['type']>(type: T): Extract<ServerFrame, { type: T }>[] {
    return this.frames.filter((f): f is Extract<ServerFrame, { type: T }> => f.type === type);
  }

  async waitFrame(pred: (f: ServerFrame) => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    await waitFor(() => this.frames.some(pred), what, timeoutMs);
  }

  /** Drop the socket without a closing handshake. */
  async cut(): Promise<void> {
    this.ws?.terminate();
    await this.closed;
  }
}
