/**
 * A raw protocol client for ops tests: frames in, frames out, waiting on frames by type
 * with a bounded timeout. No SDK, so the tests see exactly what the server sends.
 */
import WebSocket from 'ws';
import type { ClientFrame, ServerFrame } from '../../src/core/protocol.js';

export class RawClient {
  readonly frames: ServerFrame[] = [];
  private readonly waiters: Array<() => void> = [];
  closed: { code: number; reason: string } | undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.frames.push(JSON.parse(String(data)) as ServerFrame);
      this.wake();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: String(reason) };
      this.wake();
    });
    ws.on('error', () => undefined);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  static async connect(wsUrl: string, token: string): Promise<RawClient> {
    const ws = new WebSocket(`${wsUrl}?token=${encodeURIComponent(token)}`);
    const c = new RawClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return c;
  }

  /** Connect, say hello, and wait for welcome and caughtUp. */
  static async session(wsUrl: string, token: string): Promise<RawClient> {
    const c = await RawClient.connect(wsUrl, token);
    c.send({ type: 'hello', protocol: 1 });
    await c.waitFor((f) => f.type === 'caughtUp', 'caughtUp');
    return c;
  }

  send(frame: ClientFrame | Record<string, unknown>): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** Wait for the first frame (from `from` on) matching `match`; returns it. */
  async waitFor<T extends ServerFrame>(match: (f: ServerFrame) => boolean, what: string, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.find(match);
      if (f) return f as T;
      if (this.closed) throw new Error(`connection closed (${this.closed.code} ${this.closed.reason}) while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.frames.map((x) => x.type))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Messages received so far, in order. */
  messages(): Array<Extract<ServerFrame, { type: 'message' }>> {
    return this.frames.filter((f): f is Extract<ServerFrame, { type: 'message' }> => f.type === 'message');
  }

  /** Send `send` and wait for its accepted or error answer. */
  async sendAndWait(frame: { id: string; to: string; body: string; receipt?: boolean }): Promise<ServerFrame> {
    this.send({ type: 'send', ...frame });
    return this.waitFor((f) => (f.type === 'accepted' || f.type === 'error') && f.id === frame.id, `answer to ${frame.id}`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const done = new Promise<void>((resolve) => this.ws.once('close', () => resolve()));
    this.ws.close(1000, 'bye');
    await done;
  }
}
