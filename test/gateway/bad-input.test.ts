/**
 * Bad input, table-driven: every malformed frame or request gets its typed error, and
 * the server keeps serving afterwards. Abuse limits close with documented codes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { api, startTestServer, type TestServer } from './helpers.js';
import { RawClient } from '../support/raw-client.js';

interface FrameCase {
  name: string;
  frame: string;
  code: string;
  field?: string;
  id?: string;
}

const longId = 'x'.repeat(200);

const frameCases: FrameCase[] = [
  { name: 'not JSON', frame: '{"type":', code: 'BAD_REQUEST' },
  { name: 'JSON array', frame: '[1,2]', code: 'BAD_REQUEST' },
  { name: 'JSON string', frame: '"hello"', code: 'BAD_REQUEST' },
  { name: 'JSON null', frame: 'null', code: 'BAD_REQUEST' },
  { name: 'no type', frame: '{"upTo":1}', code: 'BAD_REQUEST', field: 'type' },
  { name: 'numeric type', frame: '{"type":7}', code: 'BAD_REQUEST', field: 'type' },
  { name: 'unknown type', frame: '{"type":"subscribe"}', code: 'BAD_REQUEST', field: 'type' },
  { name: 'second hello', frame: '{"type":"hello"}', code: 'BAD_REQUEST' },
  { name: 'ack without upTo', frame: '{"type":"ack"}', code: 'BAD_REQUEST', field: 'upTo' },
  { name: 'ack upTo string', frame: '{"type":"ack","upTo":"5"}', code: 'BAD_REQUEST', field: 'upTo' },
  { name: 'ack upTo negative', frame: '{"type":"ack","upTo":-1}', code: 'BAD_REQUEST', field: 'upTo' },
  { name: 'ack upTo fraction', frame: '{"type":"ack","upTo":1.5}', code: 'BAD_REQUEST', field: 'upTo' },
  { name: 'ack beyond last seq', frame: '{"type":"ack","upTo":999999}', code: 'BAD_REQUEST', field: 'upTo' },
  { name: 'send without id', frame: '{"type":"send","to":"bob","body":"x"}', code: 'BAD_REQUEST', field: 'id' },
  { name: 'send id not a string', frame: '{"type":"send","id":5,"to":"bob","body":"x"}', code: 'BAD_REQUEST', field: 'id' },
  { name: 'send id too long', frame: JSON.stringify({ type: 'send', id: longId, to: 'bob', body: 'x' }), code: 'BAD_REQUEST', field: 'id' },
  { name: 'send without to', frame: '{"type":"send","id":"s1","body":"x"}', code: 'BAD_REQUEST', field: 'to', id: 's1' },
  { name: 'send bad recipient id', frame: '{"type":"send","id":"s2","to":"bob smith","body":"x"}', code: 'BAD_REQUEST', field: 'to', id: 's2' },
  { name: 'send empty body', frame: '{"type":"send","id":"s3","to":"bob","body":""}', code: 'BAD_REQUEST', field: 'body', id: 's3' },
  { name: 'send body not a string', frame: '{"type":"send","id":"s4","to":"bob","body":{"a":1}}', code: 'BAD_REQUEST', field: 'body', id: 's4' },
  { name: 'send ttl zero', frame: '{"type":"send","id":"s5","to":"bob","body":"x","ttlSeconds":0}', code: 'BAD_REQUEST', field: 'ttlSeconds', id: 's5' },
  { name: 'send ttl above max', frame: '{"type":"send","id":"s6","to":"bob","body":"x","ttlSeconds":999999999}', code: 'BAD_REQUEST', field: 'ttlSeconds', id: 's6' },
  { name: 'send receipt not boolean', frame: '{"type":"send","id":"s7","to":"bob","body":"x","receipt":"yes"}', code: 'BAD_REQUEST', field: 'receipt', id: 's7' },
  { name: 'send bad toDevice', frame: '{"type":"send","id":"s8","to":"bob","toDevice":"","body":"x"}', code: 'BAD_REQUEST', field: 'toDevice', id: 's8' },
  { name: 'send to unregistered device', frame: '{"type":"send","id":"s9","to":"bob","toDevice":"watch","body":"x"}', code: 'NOT_FOUND', field: 'toDevice', id: 's9' },
  { name: 'send body over the limit', frame: JSON.stringify({ type: 'send', id: 's10', to: 'bob', body: 'x'.repeat(2048) }), code: 'PAYLOAD_TOO_LARGE', field: 'body', id: 's10' },
  { name: 'ping t not a number', frame: '{"type":"ping","t":"now"}', code: 'BAD_REQUEST', field: 't' },
];

interface HttpCase {
  name: string;
  method: string;
  path: string;
  token?: 'user' | 'none' | 'bad';
  body?: unknown;
  raw?: string;
  status: number;
  code: string;
  field?: string;
}

const httpCases: HttpCase[] = [
  { name: 'send: not JSON', method: 'POST', path: '/v1/messages', raw: '{oops', status: 400, code: 'BAD_REQUEST' },
  { name: 'send: empty body', method: 'POST', path: '/v1/messages', raw: '', status: 400, code: 'BAD_REQUEST' },
  { name: 'send: JSON array', method: 'POST', path: '/v1/messages', body: [1], status: 400, code: 'BAD_REQUEST' },
  { name: 'send: missing to', method: 'POST', path: '/v1/messages', body: { id: 'h1', body: 'x' }, status: 400, code: 'BAD_REQUEST', field: 'to' },
  { name: 'send: body number', method: 'POST', path: '/v1/messages', body: { id: 'h2', to: 'bob', body: 5 }, status: 400, code: 'BAD_REQUEST', field: 'body' },
  // The two rules a send frame's schema leaves to the post office: empty text, a ttl above its maximum.
  { name: 'send: empty text body', method: 'POST', path: '/v1/messages', body: { id: 'h7', to: 'bob', body: '' }, status: 400, code: 'BAD_REQUEST', field: 'body' },
  {
    name: 'send: ttl above max',
    method: 'POST',
    path: '/v1/messages',
    body: { id: 'h8', to: 'bob', body: 'x', ttlSeconds: 999999999 },
    status: 400,
    code: 'BAD_REQUEST',
    field: 'ttlSeconds',
  },
  {
    name: 'send: body too large',
    method: 'POST',
    path: '/v1/messages',
    body: { id: 'h3', to: 'bob', body: 'y'.repeat(2048) },
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
    field: 'body',
  },
  {
    name: 'send: request over the HTTP limit',
    method: 'POST',
    path: '/v1/messages',
    body: { id: 'h4', to: 'bob', body: 'z'.repeat(10_000) },
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
  },
  { name: 'send: no token', method: 'POST', path: '/v1/messages', token: 'none', body: { id: 'h5', to: 'bob', body: 'x' }, status: 401, code: 'UNAUTHORIZED' },
  { name: 'send: malformed Authorization', method: 'POST', path: '/v1/messages', token: 'bad', body: { id: 'h6', to: 'bob', body: 'x' }, status: 401, code: 'UNAUTHORIZED' },
  { name: 'pull: after not a number', method: 'GET', path: '/v1/messages?after=abc', status: 400, code: 'BAD_REQUEST', field: 'after' },
  { name: 'pull: limit zero', method: 'GET', path: '/v1/messages?limit=0', status: 400, code: 'BAD_REQUEST', field: 'limit' },
  { name: 'pull: limit above max page', method: 'GET', path: '/v1/messages?limit=50000', status: 400, code: 'BAD_REQUEST', field: 'limit' },
  { name: 'ack: upTo missing', method: 'POST', path: '/v1/ack', body: {}, status: 400, code: 'BAD_REQUEST', field: 'upTo' },
  { name: 'ack: upTo negative', method: 'POST', path: '/v1/ack', body: { upTo: -3 }, status: 400, code: 'BAD_REQUEST', field: 'upTo' },
  { name: 'device: bad start', method: 'PUT', path: '/v1/users/alice/devices/tab', body: { start: 'middle' }, status: 400, code: 'BAD_REQUEST', field: 'start' },
  { name: 'device: invalid device id', method: 'PUT', path: '/v1/users/alice/devices/%20bad', status: 400, code: 'BAD_REQUEST' },
  { name: 'device: bad URL encoding', method: 'PUT', path: '/v1/users/alice/devices/%E0%A4%A', status: 400, code: 'BAD_REQUEST', field: 'device' },
  { name: 'device: remove unknown', method: 'DELETE', path: '/v1/users/alice/devices/nope', status: 404, code: 'NOT_FOUND' },
  { name: 'unknown route', method: 'GET', path: '/v1/nothing', status: 404, code: 'NOT_FOUND' },
  // A target starting with `//` is a path, not a host: once it was served the demo page.
  { name: 'path starting with //', method: 'GET', path: '//a', status: 404, code: 'NOT_FOUND' },
  { name: 'route behind //', method: 'GET', path: '//v1/messages', status: 404, code: 'NOT_FOUND' },
  { name: 'wrong method', method: 'PATCH', path: '/v1/messages', status: 404, code: 'NOT_FOUND' },
  { name: 'stats with a user token', method: 'GET', path: '/v1/users/alice/stats', status: 403, code: 'FORBIDDEN' },
];

describe('bad input', () => {
  let server: TestServer;
  let aliceTok: string;
  before(async () => {
    server = await startTestServer({
      limits: { maxInvalidFrames: 1000, maxHttpBodyBytes: 4096, maxFrameBytes: 8192 },
      postOffice: { limits: { maxBodyBytes: 1024 } },
    });
    aliceTok = await server.token('alice', 'phone');
  });
  after(async () => {
    await server.stop();
  });

  test(`${frameCases.length + httpCases.length} malformed frames and requests each get their error code, and the server still serves`, async () => {
    assert.ok(frameCases.length + httpCases.length >= 25);
    const c = await RawClient.connect(server.url, aliceTok);
    await c.waitFor((f) => f.type === 'caughtUp');
    for (const fc of frameCases) {
      const from = c.frames.length;
      c.send(fc.frame);
      const err = await c.waitFor((f) => f.type === 'error', 'error', { from });
      assert.ok(err.type === 'error', fc.name);
      assert.equal(err.code, fc.code, `${fc.name}: ${err.message}`);
      if (fc.field) assert.equal(err.field, fc.field, `${fc.name}: field`);
      if (fc.id) assert.equal(err.id, fc.id, `${fc.name}: id`);
      assert.ok(err.message.length > 0);
    }
    for (const hc of httpCases) {
      const token = hc.token === 'none' ? undefined : hc.token === 'bad' ? undefined : aliceTok;
      const headers: Record<string, string> = hc.token === 'bad' ? { authorization: 'Basic abc' } : {};
      const r = await api(server, hc.method, hc.path, {
        ...(token ? { token } : {}),
        headers,
        ...(hc.body !== undefined ? { body: hc.body } : {}),
        ...(hc.raw !== undefined ? { raw: hc.raw } : {}),
      });
      assert.equal(r.status, hc.status, `${hc.name}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, hc.code, hc.name);
      if (hc.field) assert.equal(r.body.error.field, hc.field, `${hc.name}: field`);
    }
    // Still serving: the same connection sends and the server answers HTTP.
    c.send({ type: 'send', id: 'after-all', to: 'alice', body: 'still here' });
    const ok = await c.waitFor((f) => f.type === 'accepted');
    assert.ok(ok.type === 'accepted' && ok.id === 'after-all');
    await c.waitFor((f) => f.type === 'message' && f.id === 'after-all');
    assert.equal((await api(server, 'GET', '/healthz')).status, 200);
    assert.equal((await api(server, 'GET', '/readyz')).status, 200);
    await c.close();
  });

  test('frames before hello are refused; hello timeout closes with 4408', async () => {
    const s = await startTestServer({ session: { helloTimeoutMs: 200 } });
    try {
      const c = await RawClient.open(s.url, await s.token('alice', 'phone'));
      c.send({ type: 'ack', upTo: 1 });
      const err = await c.waitFor((f) => f.type === 'error');
      assert.ok(err.type === 'error' && err.code === 'BAD_REQUEST');
      assert.equal((await c.waitClose()).code, 4408);
    } finally {
      await s.stop();
    }
  });

  test('repeated invalid frames close the connection with 4008', async () => {
    const s = await startTestServer({ limits: { maxInvalidFrames: 5 } });
    try {
      const c = await RawClient.connect(s.url, await s.token('alice', 'phone'));
      for (let i = 0; i < 10; i++) c.send('garbage');
      assert.equal((await c.waitClose()).code, 4008);
      assert.equal(c.frames.filter((f) => f.type === 'error').length, 5);
      const again = await RawClient.connect(s.url, await s.token('alice', 'phone'));
      await again.close();
    } finally {
      await s.stop();
    }
  });

  test('an oversized frame closes with 1009; the server keeps serving', async () => {
    const c = await RawClient.connect(server.url, await server.token('big', 'phone'));
    c.send('x'.repeat(20_000));
    assert.equal((await c.waitClose()).code, 1009);
    const again = await RawClient.connect(server.url, await server.token('big', 'phone'));
    await again.roundTrip();
    await again.close();
  });

  test('send rate limit answers RATE_LIMITED with the send id', async () => {
    const s = await startTestServer({ limits: { sendRate: { perSecond: 0.01, burst: 3 } } });
    try {
      const c = await RawClient.connect(s.url, await s.token('alice', 'phone'));
      for (let i = 0; i < 5; i++) c.send({ type: 'send', id: `r${i}`, to: 'bob', body: 'x' });
      await c.until(() => c.frames.filter((f) => f.type === 'accepted' || f.type === 'error').length >= 5, 'answers');
      const limited = c.frames.filter((f) => f.type === 'error' && f.code === 'RATE_LIMITED');
      assert.equal(limited.length, 2);
      assert.deepEqual(
        limited.map((f) => (f as { id?: string }).id),
        ['r3', 'r4'],
      );
      await c.close();
    } finally {
      await s.stop();
    }
  });

  test('connection attempts per address are limited (4029)', async () => {
    const s = await startTestServer({ limits: { connectRate: { perSecond: 0.01, burst: 2 } } });
    try {
      const tok = await s.token('alice', 'phone');
      const a = await RawClient.open(s.url, tok);
      const b = await RawClient.open(s.url, await s.token('alice', 'tab'));
      const c = await RawClient.open(s.url, tok);
      assert.equal((await c.waitClose()).code, 4029);
      await Promise.all([a.close(), b.close()]);
    } finally {
      await s.stop();
    }
  });
});
