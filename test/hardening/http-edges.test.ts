/**
 * HTTP at its edges: what Node's parser refuses is answered with a typed JSON error
 * (issue 13 item 4), and slow or unfinished requests are closed by their deadlines while
 * normal clients are served (item 7; the deadlines are short here, 10 s / 30 s by default).
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { mintToken } from '../../src/gateway/auth.js';
import { startServer, type RunningServer } from '../../src/server/compose.js';

/** Send raw bytes, read until the server closes; returns status and parsed JSON body. */
function raw(port: number, request: string): Promise<{ status: number; body: { error?: { code: string; message: string } }; text: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      try {
        resolve({ status, body: JSON.parse(body) as { error?: { code: string; message: string } }, text });
      } catch {
        resolve({ status, body: {}, text });
      }
    });
    s.end(request);
  });
}

describe('HTTP edges', () => {
  let dir: string;
  let server: RunningServer;
  let token: string;
  const HEADERS_MS = 1000;
  const REQUEST_MS = 2000;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pobox-http-edges-'));
    const secret = randomBytes(32).toString('hex');
    server = await startServer({
      port: 0,
      dataDir: dir,
      logLevel: 'silent',
      auth: { secrets: [secret] },
      http: { headersTimeoutMs: HEADERS_MS, requestTimeoutMs: REQUEST_MS, keepAliveTimeoutMs: 500 },
      limits: { connectRate: { perSecond: 1000, burst: 1000 } },
    });
    token = await mintToken({ secret, user: 'alice', device: 'laptop' });
  });

  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  const cases: Array<[string, string, number, string]> = [
    ['an unknown method', 'FOO /healthz HTTP/1.1\r\nhost: x\r\n\r\n', 405, 'BAD_REQUEST'],
    ['a header block over 16 KiB', `GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'PAYLOAD_TOO_LARGE'],
    ['a malformed header line', 'GET /healthz HTTP/1.1\r\nhost: x\r\nno colon here\r\n\r\n', 400, 'BAD_REQUEST'],
    ['an unsupported HTTP version', 'GET /healthz HTTP/9.9\r\nhost: x\r\n\r\n', 400, 'BAD_REQUEST'],
    ['a bad chunk size', 'POST /v1/messages HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n', 400, 'BAD_REQUEST'],
    [
      'a WebSocket upgrade to an unknown path',
      'GET /nope HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      404,
      'NOT_FOUND',
    ],
    // ws refuses these handshakes itself; its own answer was text/html (found by the 1M fuzz run).
    [
      'a WebSocket upgrade with a malformed Sec-WebSocket-Key',
      'GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: bad\r\n\r\n',
      400,
      'BAD_REQUEST',
    ],
    [
      'a WebSocket upgrade of an unsupported version',
      'GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 99\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      400,
      'BAD_REQUEST',
    ],
    [
      'a WebSocket upgrade by POST',
      'POST /ws HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      405,
      'BAD_REQUEST',
    ],
  ];
  for (const [what, request, status, code] of cases) {
    it(`${what} is answered ${status} with the typed JSON error body`, async () => {
      const r = await raw(server.port, request);
      assert.equal(r.status, status, r.text.slice(0, 300));
      assert.equal(r.body.error?.code, code);
      assert.ok((r.body.error?.message ?? '').length > 0);
      assert.match(r.text, /content-type: application\/json/i);
    });
  }

  it('500 unfinished headers and 100 unfinished bodies are closed by their deadlines while a normal client is served', async () => {
    const held: Array<{ socket: Socket; closed: Promise<number>; written: Promise<number>; text: () => string }> = [];
    const hold = (request: string): void => {
      const socket = connect(server.port, '127.0.0.1');
      let text = '';
      socket.on('data', (d) => (text += d.toString('latin1')));
      socket.on('error', () => undefined);
      const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now())));
      const written = new Promise<number>((resolve) => socket.write(request, () => resolve(Date.now())));
      held.push({ socket, closed, written, text: () => text });
    };
    for (let i = 0; i < 500; i++) hold('GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: '); // never ends its headers
    for (let i = 0; i < 100; i++) {
      // headers complete and authorized, a chunked body that never ends
      hold(`POST /v1/messages HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${token}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{"to"\r\n`);
    }
    // While they are held, a normal client is served.
    const ok = await fetch(`${server.url}/healthz`);
    assert.equal(ok.status, 200);
    const sent = await fetch(`${server.url}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ to: 'bob', id: 'normal', body: 'hi' }),
    });
    assert.equal(sent.status, 201);

    // How long each request stayed open after its bytes reached the server's socket.
    const openFor = await Promise.all(held.map(async (h) => (await h.closed) - (await h.written)));
    const longest = Math.max(...openFor);
    // The deadline plus Node's checking interval plus scheduling slack for a loaded shared machine (up
    // to 8 s seen with load average 30 on 2 cores): still far below Node's own defaults (headers 60 s,
    // request 300 s, checked every 30 s), so without the configured deadlines this fails.
    const bound = REQUEST_MS + HEADERS_MS / 10 + 12_000;
    assert.ok(longest <= bound, `a slow request stayed open ${longest} ms; bound ${bound} ms`);
    const headerOnes = held.slice(0, 500).filter((h) => h.text().startsWith('HTTP/1.1 408'));
    assert.ok(headerOnes.length > 0, 'requests past their header deadline are told so (408) where the socket takes a reply');
    for (const h of headerOnes) assert.match(h.text(), /"code":"BAD_REQUEST"/);
  });
});
