/**
 * Shared pieces of the gateway tests: an in-process server on a random port and a temp
 * data dir, a small HTTP helper, and an auto-acker for the raw client (test/support).
 */
import { rmSync } from 'node:fs';
import { mintToken } from '../../src/gateway/auth.js';
import type { ServerConfigInput } from '../../src/gateway/config.js';
import { startServer, type RunningServer, type StartOptions } from '../../src/server/compose.js';
import type { RawClient } from '../support/raw-client.js';
import { tempDir } from '../support/temp-dir.js';

export const SECRET = 'test-secret-0123456789-abcdefghijklmnop';
export const SEND_KEY = 'send-key-0123456789-abcdefghijkl';
export const ADMIN_KEY = 'admin-key-0123456789-abcdefghijk';

export interface TestServer extends RunningServer {
  dataDir: string;
  token(user: string, device: string, ttlSeconds?: number): Promise<string>;
  /** Close the server and remove its data dir. */
  stop(): Promise<void>;
}

export async function startTestServer(overrides: ServerConfigInput = {}, options: StartOptions = {}, dataDir = tempDir('pobox-gw-').path): Promise<TestServer> {
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
