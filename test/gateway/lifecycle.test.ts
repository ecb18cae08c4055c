/**
 * The in-process server's lifecycle: extensions, graceful close with sends in flight,
 * HTTP pull/ack/devices end to end, health endpoints.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { api, ADMIN_KEY, startTestServer } from './helpers.js';
import { tempDir } from '../support/temp-dir.js';
import { RawClient } from '../support/raw-client.js';

describe('server lifecycle', () => {
  test('extensions add routes and are closed with the server', async () => {
    let closed = false;
    const s = await startTestServer(
      {},
      {
        extensions: [
          (ctx) => {
            ctx.router.route('GET', '/hello-ext', () => ({ text: 'hi', contentType: 'text/plain' }));
            return { close: async () => void (closed = true) };
          },
        ],
      },
    );
    const r = await api(s, 'GET', '/hello-ext');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'hi');
    await s.stop();
    assert.equal(closed, true);
  });

  test('close() lets sends in flight finish, closes sockets with 1001, and everything accepted survives a restart', async () => {
    const dir = tempDir().path;
    const s = await startTestServer({}, {}, dir);
    const c = await RawClient.connect(s.url, await s.token('alice', 'phone'));
    for (let i = 0; i < 200; i++) c.send({ type: 'send', id: `g${i}`, to: 'bob', body: `m${i}` });
    await c.waitFor((f) => f.type === 'accepted');
    const closing = s.close();
    assert.equal((await c.waitClose()).code, 1001);
    await closing;
    const accepted = c.frames.filter((f) => f.type === 'accepted') as Array<{ id: string; seq: number }>;
    assert.ok(accepted.length >= 1);
    // Every send got an answer or none at all (it arrived after shutdown began); no crash.
    const s2 = await startTestServer({}, {}, dir);
    try {
      const page = await api(s2, 'GET', '/v1/messages?limit=1000', { token: await s2.token('bob', 'phone') });
      const got = new Map(page.body.messages.map((m: { id: string; seq: number }) => [m.id, m.seq]));
      for (const a of accepted) assert.equal(got.get(a.id), a.seq, `accepted ${a.id} lost`);
    } finally {
      await s2.stop();
    }
  });

  test('HTTP: pull, ack, device management, purge, health', async () => {
    const s = await startTestServer();
    try {
      const bob = await s.token('bob', 'phone');
      assert.deepEqual((await api(s, 'GET', '/healthz')).body, { ok: true });
      assert.equal((await api(s, 'GET', '/readyz')).body.ok, true);
      for (let i = 0; i < 5; i++)
        assert.equal((await api(s, 'POST', '/v1/messages', { token: await s.token('alice', 'web'), body: { id: `h${i}`, to: 'bob', body: `b${i}` } })).status, 201);
      const dup = await api(s, 'POST', '/v1/messages', { token: await s.token('alice', 'web'), body: { id: 'h0', to: 'bob', body: 'b0' } });
      assert.equal(dup.status, 200);
      assert.equal(dup.body.duplicate, true);
      const p1 = await api(s, 'GET', '/v1/messages?limit=2', { token: bob });
      assert.equal(p1.status, 200);
      assert.deepEqual(
        p1.body.messages.map((m: { id: string }) => m.id),
        ['h0', 'h1'],
      );
      assert.equal(p1.body.more, true);
      const p2 = await api(s, 'GET', `/v1/messages?after=${p1.body.nextAfter}&limit=10`, { token: bob });
      assert.deepEqual(
        p2.body.messages.map((m: { id: string }) => m.id),
        ['h2', 'h3', 'h4'],
      );
      const ack = await api(s, 'POST', '/v1/ack', { token: bob, body: { upTo: p2.body.lastSeq } });
      assert.equal(ack.status, 200);
      assert.equal(ack.body.cursor, p2.body.lastSeq);
      assert.equal(ack.body.deleted, 5);
      // Devices: register, list, remove (own user), admin for anyone.
      assert.equal((await api(s, 'PUT', '/v1/users/bob/devices/tablet', { token: bob, body: { start: 'oldest' } })).status, 201);
      assert.equal((await api(s, 'PUT', '/v1/users/bob/devices/tablet', { token: bob })).status, 200);
      const list = await api(s, 'GET', '/v1/users/bob/devices', { token: bob });
      assert.deepEqual(
        list.body.devices.map((d: { device: string }) => d.device),
        ['phone', 'tablet'],
      );
      assert.equal((await api(s, 'DELETE', '/v1/users/bob/devices/tablet', { token: ADMIN_KEY })).status, 200);
      assert.equal((await api(s, 'POST', '/v1/messages', { token: await s.token('alice', 'web'), body: { id: 'h9', to: 'bob', body: 'b9' } })).status, 201);
      const purge = await api(s, 'DELETE', '/v1/users/bob/messages', { token: ADMIN_KEY });
      assert.equal(purge.body.deleted, 1);
      assert.equal((await api(s, 'GET', '/v1/users/bob/stats', { token: ADMIN_KEY })).body.pending, 0);
    } finally {
      await s.stop();
    }
  });
});

describe('docs', () => {
  test('docs/openapi.yaml describes every route of the HTTP API, with its method', async () => {
    const { readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const yaml = readFileSync(join(import.meta.dirname, '../../docs/openapi.yaml'), 'utf8');
    const documented = new Set<string>();
    let path = '';
    for (const line of yaml.split('\n')) {
      const p = /^ {2}(\/\S*):\s*$/.exec(line);
      if (p) path = p[1]!;
      const m = /^ {4}(get|put|post|delete|patch):/.exec(line);
      if (m && path) documented.add(`${m[1]!.toUpperCase()} ${path}`);
    }
    // Every route of a running server: the gateway's own, and those ops adds (metrics, admin, demo).
    const s = await startTestServer({ demo: true });
    try {
      const routes = s.router.list().map(([method, pattern]) => `${method} ${pattern.replace(/:(\w+)/g, '{$1}')}`);
      assert.ok(routes.length >= 10);
      for (const r of routes) assert.ok(documented.has(r), `${r} is not in docs/openapi.yaml`);
      assert.equal(documented.size, routes.length, 'openapi.yaml documents a route the server does not have');
    } finally {
      await s.stop();
    }
  });

  test('docs/protocol.md names every close code and error code', async () => {
    const { readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { CloseCode } = await import('../../src/core/protocol.js');
    const { ERROR_CODES } = await import('../../src/core/errors.js');
    const md = readFileSync(join(import.meta.dirname, '../../docs/protocol.md'), 'utf8');
    for (const [name, code] of Object.entries(CloseCode)) assert.match(md, new RegExp(`\\| ${code} \\| ${name} \\|`), `close code ${name}`);
    for (const code of ERROR_CODES) assert.match(md, new RegExp(`\\| \`${code}\` \\|`), `error code ${code}`);
    for (const type of ['hello', 'ack', 'send', 'ping', 'welcome', 'message', 'caughtUp', 'accepted', 'acked', 'error', 'pong']) {
      assert.match(md, new RegExp(`### \`${type}\``), `frame ${type}`);
    }
  });
});
