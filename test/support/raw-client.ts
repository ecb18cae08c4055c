/**
 * The one raw WebSocket client of the tests: frames in and out with no SDK in between,
 * so a test sees exactly what the server sends. It records every frame and the close;
 * waits go through the tests' one waitFor (wait.ts).
 */
import WebSocket from 'ws';
import type { ClientFrame, ServerFrame } from '../../src/core/protocol.js';
import { waitFor } from './wait.js';

type MessageFrame = Extract<ServerFrame, { type: 'message' }>;

export class RawClient {
  readonly frames: ServerFrame[] = [];
  closed: { code: number; reason: string } | undefined;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.frames.push(JSON.parse(String(data)) as ServerFrame);
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: String(reason) };
    });
    ws.on('error', () => undefined);
  }

  /** Open a socket (the token in the URL, or as a bearer header with `header`); says nothing yet. */
  static async open(url: string, token?: string, opts: { header?: boolean; path?: string } = {}): Promise<RawClient> {
    const u = new URL(url.replace(/^http/, 'ws'));
    u.pathname = opts.path ?? '/ws';
    if (token !== undefined && !opts.header) u.searchParams.set('token', token);
    const ws = new WebSocket(u, token !== undefined && opts.header ? { headers: { authorization: `Bearer ${token}` } } : {});
    const c = new RawClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return c;
  }

  /** Open, say hello and wait for welcome. */
  static async connect(url: string, token: string, hello: Record<string, unknown> = {}): Promise<RawClient> {
    const c = await RawClient.open(url, token);
    c.send({ type: 'hello', protocol: 1, ...hello });
    await c.waitFor((f) => f.type === 'welcome', 'welcome');
    return c;
  }

  /** Open, say hello and wait until the backlog is drained (caughtUp). */
  static async session(url: string, token: string): Promise<RawClient> {
    const c = await RawClient.connect(url, token);
    await c.waitFor((f) => f.type === 'caughtUp', 'caughtUp');
    return c;
  }

  send(frame: ClientFrame | Record<string, unknown> | string): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Wait until `cond()` holds. */
  async until(cond: () => boolean, what = 'condition', ms = 20_000): Promise<void> {
    await waitFor(() => cond() || undefined, `${what} (frames=${this.frames.length}, closed=${JSON.stringify(this.closed)})`, ms);
  }

  /** The first frame (from index `from` on) matching `pred`; fails if the connection closes first. */
  async waitFor<T extends ServerFrame = ServerFrame>(pred: (f: ServerFrame) => boolean, what = 'frame', opts: { from?: number; ms?: number } = {}): Promise<T> {
    const found = await waitFor(() => this.frames.slice(opts.from ?? 0).find(pred) ?? (this.closed ? null : undefined), what, opts.ms ?? 20_000);
    if (!found) throw new Error(`connection closed (${JSON.stringify(this.closed)}) before ${what}; last frames: ${JSON.stringify(this.frames.slice(-3))}`);
    return found as T;
  }

  async waitClose(ms = 20_000): Promise<{ code: number; reason: string }> {
    return waitFor(() => this.closed, 'close', ms);
  }

  messages(): MessageFrame[] {
    return this.frames.filter((f): f is MessageFrame => f.type === 'message');
  }

  /** Send `send` and wait for its accepted or error answer. */
  async sendAndWait(frame: { id: string; to: string; body: string; receipt?: boolean }): Promise<ServerFrame> {
    this.send({ type: 'send', ...frame });
    return this.waitFor((f) => (f.type === 'accepted' || f.type === 'error') && f.id === frame.id, `answer to ${frame.id}`);
  }

  /** Ping and wait for the pong: every frame the server wrote before it has arrived. */
  async roundTrip(): Promise<void> {
    const t = Math.random();
    const from = this.frames.length;
    this.send({ type: 'ping', t });
    await this.waitFor((f) => f.type === 'pong' && f.t === t, 'pong', { from });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.ws.close(1000);
    await this.waitClose();
  }
}
