/**
 * Bodies of bytes over real sockets (embedded engine): random bytes of densely sampled
 * lengths 0..70 KiB, sent through a JSON session (base64, `binary: true`), a MessagePack
 * session (`?encoding=msgpack`, raw bytes) and HTTP, each read back through a JSON
 * session, a MessagePack session and an HTTP pull, byte for byte. The size limit counts
 * bytes (64 KiB of bytes is 87,384 characters of base64 and is accepted).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Packr } from 'msgpackr';
import { WebSocket } from 'ws';
import type { ClientMessage, PoboxClient } from '../../src/client/index.js';
import { CloseCode } from '../../src/core/protocol.js';
import { Resources, startGateway, type TestGateway } from '../client/gateway-helpers.js';
import { sampleLengths } from '../support/lengths.js';
import { waitFor } from '../support/wait.js';

const LIMIT = 64 * 1024;
const packr = new Packr({ useRecords: false });
const equalBytes = (a: unknown, b: Uint8Array): boolean => a instanceof Uint8Array && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);

async function http(gw: TestGateway, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(gw.server.url + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: await res.json() };
}

describe('bodies of bytes over JSON and MessagePack sessions and HTTP (lmdb)', () => {
  const res = new Resources();
  let gw: TestGateway;

  before(async () => {
    gw = await startGateway(res, {
      config: { postOffice: { limits: { maxBodyBytes: LIMIT, maxMailboxBytes: 1024 * 1024 * 1024, maxMailboxMessages: 100_000 } }, limits: { maxInvalidFrames: 100_000 } },
    });
  });
  after(() => res.closeAll());

  it('round-trips random bytes of every sampled length exactly, through every way in and every way out', { timeout: 600_000 }, async () => {
    const lengths = sampleLengths({ max: 70 * 1024, limit: LIMIT, dense: 300, randomTriples: 60, seed: 7 });
    // The receiving user's three devices, registered before anything is sent.
    const receivers: Record<string, PoboxClient> = {};
    const got: Record<string, ClientMessage[]> = { json: [], msgpack: [] };
    for (const encoding of ['json', 'msgpack'] as const) {
      const c = await gw.client('bob', encoding, { encoding });
      c.on('message', (m) => void got[encoding]!.push(m));
      await new Promise<void>((resolve) => c.once('caughtUp', () => resolve()));
      receivers[encoding] = c;
    }
    const bobHttp = await gw.token('bob', 'http');
    assert.equal((await http(gw, bobHttp, 'PUT', '/v1/users/bob/devices/http', { start: 'oldest' })).status, 201);

    const json = await gw.client('alice', 'json-sender');
    const msgpack = await gw.client('alice', 'msgpack-sender', { encoding: 'msgpack' });
    const aliceHttp = await gw.token('alice', 'http-sender');
    const expected: Uint8Array[] = [];
    for (const n of lengths) {
      for (const via of ['json', 'msgpack', 'http'] as const) {
        const body = randomBytes(n);
        const id = `${via}-${n}`;
        let outcome: { seq: number } | { code: string };
        if (via === 'http') {
          const r = await http(gw, aliceHttp, 'POST', '/v1/messages', { to: 'bob', id, body: body.toString('base64'), binary: true });
          outcome = r.status === 201 ? { seq: r.body.seq } : { code: r.body.error?.code ?? r.body.code };
        } else {
          outcome = await (via === 'json' ? json : msgpack).send({ to: 'bob', id, body }).then(
            (r) => ({ seq: r.seq }),
            (e: { code: string }) => ({ code: e.code }),
          );
        }
        if (n > LIMIT) {
          assert.deepEqual(outcome, { code: 'PAYLOAD_TOO_LARGE' }, `${id}: over the limit`);
        } else {
          expected.push(body);
          assert.deepEqual(outcome, { seq: expected.length }, `${id}: stored`);
        }
      }
    }
    assert.ok(expected.some((b) => b.length === LIMIT) && expected.some((b) => b.length === 0));

    await waitFor(() => got['json']!.length >= expected.length && got['msgpack']!.length >= expected.length, 'both sessions drained everything', 120_000);
    for (const encoding of ['json', 'msgpack'] as const) {
      const msgs = got[encoding]!;
      assert.equal(msgs.length, expected.length, encoding);
      msgs.forEach((m, i) => assert.ok(equalBytes(m.body, expected[i]!), `${encoding} session: seq ${m.seq} (${expected[i]!.length} bytes) differs`));
    }
    let after = 0;
    const pulled: Uint8Array[] = [];
    for (;;) {
      const page = await http(gw, bobHttp, 'GET', `/v1/messages?after=${after}&limit=100`);
      assert.equal(page.status, 200);
      for (const m of page.body.messages) {
        assert.equal(m.binary, true);
        assert.equal(m.bytes, Buffer.from(m.body, 'base64').length);
        pulled.push(Buffer.from(m.body, 'base64'));
      }
      after = page.body.nextAfter;
      if (!page.body.more) break;
    }
    assert.equal(pulled.length, expected.length);
    pulled.forEach((b, i) => assert.ok(equalBytes(b, expected[i]!), `HTTP pull: message ${i + 1} differs`));
  });

  it('refuses what is not bytes where bytes are announced, and binary messages on a JSON connection', async () => {
    const token = await gw.token('carol', 'web');
    // binary: true with text that is not base64: BAD_REQUEST naming the body, over HTTP and over a frame.
    for (const body of ['not base64!', 'QQ', 'QQ=']) {
      const r = await http(gw, token, 'POST', '/v1/messages', { to: 'dave', id: 'b64', body, binary: true });
      assert.equal(r.status, 400, body);
      assert.equal(r.body.error.field, 'body');
    }
    const ws = new WebSocket(`${gw.server.wsUrl}?token=${token}`);
    const frames: any[] = [];
    ws.on('message', (d: Buffer) => frames.push(JSON.parse(d.toString())));
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ type: 'hello' }));
    await waitFor(() => frames.some((f) => f.type === 'welcome'), 'welcome');
    ws.send(JSON.stringify({ type: 'send', id: 'bad-1', to: 'dave', body: '***', binary: true }));
    ws.send(packr.pack({ type: 'send', id: 'bad-2', to: 'dave', body: new Uint8Array([1, 2, 3]) }));
    await waitFor(() => frames.filter((f) => f.type === 'error').length === 2, 'two errors');
    const [e1, e2] = frames.filter((f) => f.type === 'error');
    assert.deepEqual([e1.code, e1.id, e1.field], ['BAD_REQUEST', 'bad-1', 'body']);
    assert.equal(e2.code, 'BAD_REQUEST');
    assert.match(e2.message, /msgpack/);
    ws.close();
    assert.equal((await gw.server.postOffice.stats('dave')).lastSeq, 0);
  });

  it('an unknown encoding is refused at connect: an error frame, then close 4008', async () => {
    const token = await gw.token('carol', 'web2');
    const ws = new WebSocket(`${gw.server.wsUrl}?token=${token}&encoding=xml`);
    const frames: any[] = [];
    ws.on('message', (d: Buffer) => frames.push(JSON.parse(d.toString())));
    const code = await new Promise<number>((resolve) => ws.once('close', (c: number) => resolve(c)));
    assert.equal(code, CloseCode.POLICY);
    assert.equal(frames[0]?.code, 'BAD_REQUEST');
  });

  it('a MessagePack session gets every frame as MessagePack, bodies of bytes as raw bytes, text as text', async () => {
    const token = await gw.token('erin', 'raw');
    await gw.server.postOffice.send({ to: 'erin', from: 'x', id: 'text', body: 'plain text' });
    const bytes = randomBytes(1000);
    await gw.server.postOffice.send({ to: 'erin', from: 'x', id: 'bytes', body: bytes });
    const ws = new WebSocket(`${gw.server.wsUrl}?token=${token}&encoding=msgpack`);
    const frames: any[] = [];
    ws.on('message', (d: Buffer, isBinary: boolean) => {
      assert.equal(isBinary, true, 'every frame of a MessagePack session is a binary message');
      frames.push(packr.unpack(d));
    });
    await new Promise((r) => ws.once('open', r));
    ws.send(packr.pack({ type: 'hello' }));
    await waitFor(() => frames.some((f) => f.type === 'caughtUp'), 'caughtUp');
    const [text, raw] = frames.filter((f) => f.type === 'message');
    assert.equal(text.body, 'plain text');
    assert.ok(equalBytes(raw.body, bytes));
    assert.equal(raw.binary, undefined, 'no marker: the bin type says it');
    ws.send(packr.pack({ type: 'send', id: 'm1', to: 'frank', body: bytes }));
    await waitFor(() => frames.some((f) => f.type === 'accepted'), 'accepted');
    ws.close();
    const m = (
      await gw.server.postOffice.read('frank', 'd', 0, 10).catch(async () => {
        await gw.server.postOffice.registerDevice('frank', 'd', 'oldest');
        return gw.server.postOffice.read('frank', 'd', 0, 10);
      })
    ).messages[0]!;
    assert.ok(equalBytes(m.body, bytes));
  });
});
