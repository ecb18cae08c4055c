/**
 * Authorization: a token names one user and device, and that is all it can touch.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { mintToken, VerifiedTokens, type Principal } from '../../src/gateway/auth.js';
import { api, ADMIN_KEY, SECRET, SEND_KEY, startTestServer, type TestServer } from './helpers.js';
import { RawClient } from '../support/raw-client.js';

describe('authorization', () => {
  let server: TestServer;
  let aliceTok: string;
  let bobTok: string;
  before(async () => {
    server = await startTestServer();
    aliceTok = await server.token('alice', 'phone');
    bobTok = await server.token('bob', 'phone');
    // bob has a device and one message waiting.
    assert.equal((await api(server, 'PUT', '/v1/users/bob/devices/phone', { token: bobTok })).status, 201);
    assert.equal((await api(server, 'POST', '/v1/messages', { token: aliceTok, body: { id: 'm1', to: 'bob', body: 'for bob' } })).status, 201);
  });
  after(async () => {
    await server.stop();
  });

  const rejectedTokens: Array<[string, () => Promise<string>]> = [
    ['expired', () => mintToken({ secret: SECRET, user: 'bob', device: 'phone', ttlSeconds: 60, now: Date.now() - 3600_000 })],
    ['wrongly signed', () => mintToken({ secret: 'another-secret-0123456789-abcdefghijkl', user: 'bob', device: 'phone' })],
    [
      'forged (payload edited)',
      async () => {
        const t = await mintToken({ secret: SECRET, user: 'alice', device: 'phone' });
        const [h, , s] = t.split('.');
        const payload = Buffer.from(JSON.stringify({ sub: 'bob', device: 'phone', exp: Math.floor(Date.now() / 1000) + 600 })).toString('base64url');
        return `${h}.${payload}.${s}`;
      },
    ],
    [
      'alg none',
      async () => {
        const h = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
        const p = Buffer.from(JSON.stringify({ sub: 'bob', device: 'phone', exp: Math.floor(Date.now() / 1000) + 600 })).toString('base64url');
        return `${h}.${p}.`;
      },
    ],
    ['no device claim', () => new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('bob').setExpirationTime('10m').sign(new TextEncoder().encode(SECRET))],
    ['no exp', () => new SignJWT({ device: 'phone' }).setProtectedHeader({ alg: 'HS256' }).setSubject('bob').sign(new TextEncoder().encode(SECRET))],
    ['garbage', async () => 'not-a-token'],
    [
      'correctly signed with an unknown crit header',
      async () => {
        // jose will not sign this, so by hand: the signature is right, the header is not acceptable.
        const h = Buffer.from(JSON.stringify({ alg: 'HS256', crit: ['x-pobox'], 'x-pobox': 1 })).toString('base64url');
        const p = Buffer.from(JSON.stringify({ sub: 'bob', device: 'phone', exp: Math.floor(Date.now() / 1000) + 600 })).toString('base64url');
        return `${h}.${p}.${createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url')}`;
      },
    ],
    [
      'not yet valid (nbf in an hour)',
      () =>
        new SignJWT({ device: 'phone' }).setProtectedHeader({ alg: 'HS256' }).setSubject('bob').setNotBefore('1h').setExpirationTime('2h').sign(new TextEncoder().encode(SECRET)),
    ],
  ];

  for (const [name, make] of rejectedTokens) {
    test(`${name} token is rejected over WebSocket (4001) and HTTP (401)`, async () => {
      const token = await make();
      const c = await RawClient.open(server.url, token);
      const closed = await c.waitClose();
      assert.equal(closed.code, 4001);
      assert.equal(c.frames[0]?.type, 'error');
      assert.ok(c.frames[0]?.type === 'error' && c.frames[0].code === 'UNAUTHORIZED');
      const r = await api(server, 'GET', '/v1/messages', { token });
      assert.equal(r.status, 401);
      assert.equal(r.body.error.code, 'UNAUTHORIZED');
    });
  }

  test('no token at all is rejected', async () => {
    const c = await RawClient.open(server.url);
    assert.equal((await c.waitClose()).code, 4001);
    assert.equal((await api(server, 'GET', '/v1/messages')).status, 401);
  });

  test('the token also works as an Authorization header on the upgrade', async () => {
    const c = await RawClient.open(server.url, bobTok, { header: true });
    c.send({ type: 'hello' });
    const w = await c.waitFor((f) => f.type === 'welcome');
    assert.ok(w.type === 'welcome' && w.user === 'bob' && w.device === 'phone');
    await c.close();
  });

  test("alice's token cannot read, ack or manage bob's mailbox over HTTP", async () => {
    // Reading: the token only ever reads its own device.
    const pull = await api(server, 'GET', '/v1/messages', { token: aliceTok });
    assert.equal(pull.status, 200);
    assert.equal(pull.body.messages.length, 0, 'alice sees nothing of bob');
    // Ack: acts on alice's own device only; bob's cursor does not move.
    await api(server, 'POST', '/v1/ack', { token: aliceTok, body: { upTo: 1 } });
    const devices = await api(server, 'GET', '/v1/users/bob/devices', { token: bobTok });
    assert.equal(devices.body.devices[0].cursor, 0);
    // Managing bob's devices or stats is forbidden.
    for (const [method, path] of [
      ['GET', '/v1/users/bob/devices'],
      ['PUT', '/v1/users/bob/devices/evil'],
      ['DELETE', '/v1/users/bob/devices/phone'],
      ['GET', '/v1/users/bob/stats'],
      ['DELETE', '/v1/users/bob/messages'],
    ] as const) {
      const r = await api(server, method, path, { token: aliceTok });
      assert.equal(r.status, 403, `${method} ${path}`);
      assert.equal(r.body.error.code, 'FORBIDDEN');
    }
    // bob's message is still there for bob.
    const bobPull = await api(server, 'GET', '/v1/messages', { token: bobTok });
    assert.deepEqual(
      bobPull.body.messages.map((m: { id: string }) => m.id),
      ['m1'],
    );
  });

  test("alice's token cannot read or ack bob's mailbox over WebSocket", async () => {
    const c = await RawClient.connect(server.url, aliceTok);
    await c.waitFor((f) => f.type === 'caughtUp');
    assert.equal(c.messages().length, 0);
    c.send({ type: 'ack', upTo: 1 }); // beyond alice's own last seq: refused, and never touches bob
    const err = await c.waitFor((f) => f.type === 'error');
    assert.ok(err.type === 'error' && err.code === 'BAD_REQUEST');
    const devices = await api(server, 'GET', '/v1/users/bob/devices', { token: ADMIN_KEY });
    assert.equal(devices.body.devices[0].cursor, 0);
    await c.close();
  });

  test('a forged from is ignored: the sender is the token user (WS and HTTP)', async () => {
    const mallory = await RawClient.connect(server.url, await server.token('mallory', 'phone'));
    mallory.send({ type: 'send', id: 'forged-ws', to: 'olga', body: 'hi', from: 'alice' });
    await mallory.waitFor((f) => f.type === 'accepted');
    const http = await api(server, 'POST', '/v1/messages', { token: await server.token('mallory', 'phone'), body: { id: 'forged-http', to: 'olga', body: 'hi', from: 'alice' } });
    assert.equal(http.status, 201);
    const olga = await api(server, 'GET', '/v1/messages', { token: await server.token('olga', 'phone') });
    assert.deepEqual(
      olga.body.messages.map((m: { id: string; from: string }) => [m.id, m.from]),
      [
        ['forged-ws', 'mallory'],
        ['forged-http', 'mallory'],
      ],
    );
    await mallory.close();
  });

  test('API keys: send scope sends as a named user; admin scope manages any user; neither can do the other', async () => {
    const sent = await api(server, 'POST', '/v1/messages', { token: SEND_KEY, body: { from: 'system', id: 'k1', to: 'pat', body: 'hello' } });
    assert.equal(sent.status, 201);
    const noFrom = await api(server, 'POST', '/v1/messages', { token: SEND_KEY, body: { id: 'k2', to: 'pat', body: 'hello' } });
    assert.equal(noFrom.status, 400);
    assert.equal(noFrom.body.error.field, 'from');
    assert.equal((await api(server, 'GET', '/v1/users/pat/stats', { token: SEND_KEY })).status, 403);
    assert.equal((await api(server, 'POST', '/v1/messages', { token: ADMIN_KEY, body: { from: 'x', id: 'k3', to: 'pat', body: 'no' } })).status, 403);
    const stats = await api(server, 'GET', '/v1/users/pat/stats', { token: ADMIN_KEY });
    assert.equal(stats.status, 200);
    assert.equal(stats.body.pending, 1);
    assert.equal((await api(server, 'GET', '/v1/users/pat/stats', { token: 'unknown-key-0123456789-abcdefghij' })).status, 401);
    // An API key cannot open a device session.
    const c = await RawClient.open(server.url, ADMIN_KEY);
    assert.equal((await c.waitClose()).code, 4001);
  });

  test('secret rotation and EdDSA: every configured secret verifies; an Ed25519 public key verifies its tokens', async () => {
    const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const jwk = JSON.stringify(await exportJWK(publicKey));
    const oldSecret = 'old-secret-0123456789-abcdefghijklmnop';
    const s = await startTestServer({ auth: { secrets: [SECRET, oldSecret], publicKey: jwk } });
    try {
      const old = await mintToken({ secret: oldSecret, user: 'quinn', device: 'phone' });
      assert.equal((await api(s, 'GET', '/v1/messages', { token: old })).status, 200);
      const ed = await new SignJWT({ device: 'tab' }).setProtectedHeader({ alg: 'EdDSA' }).setSubject('quinn').setExpirationTime('5m').sign(privateKey);
      const c = await RawClient.connect(s.url, ed);
      const w = c.frames.find((f) => f.type === 'welcome');
      assert.ok(w?.type === 'welcome' && w.device === 'tab');
      await c.close();
      const other = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
      const bad = await new SignJWT({ device: 'tab' }).setProtectedHeader({ alg: 'EdDSA' }).setSubject('quinn').setExpirationTime('5m').sign(other.privateKey);
      assert.equal((await api(s, 'GET', '/v1/messages', { token: bad })).status, 401);
    } finally {
      await s.stop();
    }
  });
});

describe('issuer and audience', () => {
  test('when configured, a token must carry both, whatever the signature', async () => {
    const s = await startTestServer({ auth: { issuer: 'https://id.example', audience: 'pobox' } });
    try {
      const sign = (claims: { iss?: string; aud?: string }): Promise<string> => {
        let jwt = new SignJWT({ device: 'phone' }).setProtectedHeader({ alg: 'HS256' }).setSubject('uma').setExpirationTime('10m');
        if (claims.iss) jwt = jwt.setIssuer(claims.iss);
        if (claims.aud) jwt = jwt.setAudience(claims.aud);
        return jwt.sign(new TextEncoder().encode(SECRET));
      };
      const status = async (claims: { iss?: string; aud?: string }): Promise<number> => (await api(s, 'GET', '/v1/messages', { token: await sign(claims) })).status;
      assert.deepEqual(
        [
          await status({}),
          await status({ iss: 'https://id.example' }),
          await status({ iss: 'https://other', aud: 'pobox' }),
          await status({ iss: 'https://id.example', aud: 'pobox' }),
        ],
        [401, 401, 401, 200],
      );
    } finally {
      await s.stop();
    }
  });
});

describe('verified tokens are remembered until their exp', () => {
  const user = (name: string, expiresAt: number): Extract<Principal, { kind: 'user' }> => ({ kind: 'user', user: name, device: 'phone', expiresAt });

  test('a remembered token is forgotten at its exp, and the least recently used one goes first past the limit', () => {
    const v = new VerifiedTokens(2);
    v.add('a', user('alice', 1000));
    v.add('b', user('bob', 2000));
    assert.equal(v.get('a', 999)?.user, 'alice', 'valid until just before exp');
    v.add('c', user('carol', 3000)); // over the limit: b was used least recently
    assert.deepEqual([v.get('b', 0), v.get('a', 0)?.user, v.get('c', 0)?.user], [undefined, 'alice', 'carol']);
    assert.equal(v.get('a', 1000), undefined, 'at exp it is verified again');
    assert.equal(v.size, 1, 'an expired entry is dropped, not kept');
  });

  test('past the limit the least recently used eighth is forgotten at once, the recent ones kept', () => {
    const v = new VerifiedTokens(16);
    for (let i = 0; i < 16; i++) v.add(`t${i}`, user(`u${i}`, 10_000));
    assert.equal(v.get('t0', 0)?.user, 'u0', 't0 is now the most recently used');
    v.add('t16', user('u16', 10_000));
    assert.equal(v.size, 14, 'one over the limit of 16, and 2 more (an eighth) forgotten');
    assert.deepEqual(
      ['t1', 't2', 't3'].map((t) => v.get(t, 0)),
      [undefined, undefined, undefined],
    );
    for (const t of ['t0', 't4', 't15', 't16']) assert.ok(v.get(t, 0), `${t} kept`);
  });

  test('a token used before is refused once it expired (verified again, with no clock tolerance)', async () => {
    const s = await startTestServer({ auth: { clockToleranceSeconds: 0 } });
    try {
      const token = await mintToken({ secret: SECRET, user: 'rita', device: 'phone', ttlSeconds: 3 });
      assert.equal((await api(s, 'GET', '/v1/messages', { token })).status, 200);
      assert.equal((await api(s, 'GET', '/v1/messages', { token })).status, 200, 'the second use, remembered');
      // Nothing but the clock changes: the same token must start failing at its exp.
      let status = 200;
      for (let i = 0; i < 200 && status === 200; i++) {
        await new Promise((r) => setTimeout(r, 100));
        status = (await api(s, 'GET', '/v1/messages', { token })).status;
      }
      assert.equal(status, 401);
      const c = await RawClient.open(s.url, token);
      assert.equal((await c.waitClose()).code, 4001);
    } finally {
      await s.stop();
    }
  });

  test('a forged variant of a remembered token is still refused', async () => {
    const s = await startTestServer();
    try {
      const token = await mintToken({ secret: SECRET, user: 'sam', device: 'phone' });
      assert.equal((await api(s, 'GET', '/v1/messages', { token })).status, 200);
      const [h, p, sig] = token.split('.');
      const flipped = sig!.startsWith('A') ? `B${sig!.slice(1)}` : `A${sig!.slice(1)}`;
      assert.equal((await api(s, 'GET', '/v1/messages', { token: `${h}.${p}.${flipped}` })).status, 401);
    } finally {
      await s.stop();
    }
  });
});
