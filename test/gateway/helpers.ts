/**
 * Shared pieces of the gateway tests: an in-process server on a random port and a temp
 * data dir, raw `ws` clients that queue frames so tests can wait for conditions (never
 * sleep), and a small HTTP helper.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { ServerFrame } from '../../src/core/protocol.js';
import { mintToken } from '../../src/gateway/auth.js';
import type { ServerConfigInput } from '../../src/gateway/config.js';
import { startServer, type RunningServer, type StartOptions } from '../../src/server/compose.js';

export const SECRET = 'test-secret-0123456789-abcdefghijklmnop';
export const SEND_KEY = 'send-key-0123456789-abcdefghijkl';
export const ADMIN_KEY = 'admin-key-0123456789-abcdefghijk';

export interface TestServer extends RunningServer {
  dataDir: string;
  token(user: string, device: string, ttlSeconds?: number): Promise<string>;
  /** Close the server and remove its data dir. */
  stop(): Promise<void>;
}

export function tempDir(prefix = 'pobox-gw-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function startTestServer(overrides: ServerConfigInput = {}, options: StartOptions = {}, dataDir = tempDir()): Promise<TestServer> {
  const server = await startServer(
    {
      port: 0,
      host: '127.0.0.1',
      dataDir,
      logLevel: 'silent',
      ...overrides,
      auth: {
        secrets: [SECRET],
        apiKeys: [
          { key: SEND_KEY, name: 'backend', scopes: ['send'] },
          { key: ADMIN_KEY, name: 'ops', scopes: ['admin'] },
        ],
        ...overrides.auth,
      },
      postOffice: { ...overrides.postOffice, retention: { sweepIntervalMs: 0, ...overrides.postOffice?.retention } },
    },
    options,
  );
  return Object.assign(server, {
    dataDir,
    token: (user: string, device: string, ttlSeconds = 600) => mintToken({ secret: SECRET, user, device, ttlSeconds }),
    stop: async () => {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  });
}

/** A raw WebSocket client that records every frame, for protocol-level assertions. */
export class RawClient {
  readonly frames: ServerFrame[] = [];
  closed: { code: number; reason: string } | undefined;
  private waiters: Array<() => void> = [];

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.frames.push(JSON.parse(data.toString()) as ServerFrame);
      this.notify();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.notify();
    });
    ws.on('error', () => undefined);
  }

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
    await c.waitFor((f) => f.type === 'welcome');
    return c;
  }

  private notify(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Wait until `cond()` holds, re-checked on every frame or close; rejects after `ms`. */
  async until(cond: () => boolean, what = 'condition', ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; frames=${this.frames.length} closed=${JSON.stringify(this.closed)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, Math.min(1000, deadline - Date.now())));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The first frame (from index `from`) matching `pred`, waiting for it if needed. */
  async waitFor<T extends ServerFrame = ServerFrame>(pred: (f: ServerFrame) => boolean, from = 0, ms = 20_000): Promise<T> {
    let found: ServerFrame | undefined;
    await this.until(
      () => {
        found = this.frames.slice(from).find(pred);
        return found !== undefined || this.closed !== undefined;
      },
      'frame',
      ms,
    );
    if (!found) throw new Error(`connection closed (${JSON.stringify(this.closed)}) before the expected frame; last frames: ${JSON.stringify(this.frames.slice(-3))}`);
    return found as T;
  }

  async waitClose(ms = 20_000): Promise<{ code: number; reason: string }> {
    await this.until(() => this.closed !== undefined, 'close', ms);
    return this.closed!;
  }

  messages(): Array<Extract<ServerFrame, { type: 'message' }>> {
    return this.frames.filter((f): f is Extract<ServerFrame, { type: 'message' }> => f.type === 'message');
  }

  /** Ping and wait for the pong: every frame the server wrote before it has arrived. */
  async roundTrip(): Promise<void> {
    const t = Math.random();
    const from = this.frames.length;
    this.send({ type: 'ping', t });
    await this.waitFor((f) => f.type === 'pong' && f.t === t, from);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.ws.close(1000);
    await this.waitClose();
  }
}

export async function api(
  server: { url: string },
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token !== undefined) headers['authorization'] = `Bearer ${opts.token}`;
  let payload: string | undefined = opts.raw;
  if (opts.body !== undefined) {
    payload = JSON.stringify(opts.body);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(server.url + path, { method, headers, ...(payload !== undefined ? { body: payload } : {}) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body };
}

/** Send `n` messages over HTTP with the send key (ids `${prefix}-${i}`), in parallel chunks. */
export async function sendMany(server: { url: string }, from: string, to: string, n: number, prefix: string, startAt = 0): Promise<number[]> {
  const seqs: number[] = [];
  const chunk = 50;
  for (let i = startAt; i < startAt + n; i += chunk) {
    const batch = [];
    for (let j = i; j < Math.min(startAt + n, i + chunk); j++) {
      batch.push(api(server, 'POST', '/v1/messages', { token: SEND_KEY, body: { from, to, id: `${prefix}-${j}`, body: `message ${j}` } }));
    }
    for (const r of await Promise.all(batch)) {
      if (r.status !== 201 && r.status !== 200) throw new Error(`send failed: ${r.status} ${JSON.stringify(r.body)}`);
      seqs.push(r.body.seq);
    }
  }
  return seqs;
}

/** Ack cumulatively every `every` messages, and at caughtUp. */
export function autoAck(c: RawClient, every: number): void {
  // Frames that arrived with the welcome (before this listener) count too: ack them now,
  // or a client whose first read held a whole window would wait forever.
  const early = c.messages();
  let count = early.length;
  let last = early.at(-1)?.seq ?? 0;
  if (count > 0) c.send({ type: 'ack', upTo: last });
  c.ws.on('message', (data) => {
    const f = JSON.parse(data.toString()) as { type: string; seq?: number };
    if (f.type === 'message') {
      count++;
      last = f.seq!;
      if (count % every === 0) c.send({ type: 'ack', upTo: last });
    } else if (f.type === 'caughtUp' && last > 0) {
      c.send({ type: 'ack', upTo: last });
    }
  });
}
