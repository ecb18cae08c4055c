/** Demo mode: on by default only for the embedded engine on loopback; its routes exist only when on. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { demoEnabled } from '../../src/ops/demo-routes.js';
import { startOpsServer } from './server-helpers.js';
import { RawClient } from '../support/raw-client.js';

test('demo mode defaults: on for lmdb on a loopback host, off otherwise, and an explicit setting wins', () => {
  assert.equal(demoEnabled({ store: 'lmdb', host: '127.0.0.1', demo: undefined }), true);
  assert.equal(demoEnabled({ store: 'lmdb', host: 'localhost', demo: undefined }), true);
  assert.equal(demoEnabled({ store: 'lmdb', host: '::1', demo: undefined }), true);
  assert.equal(demoEnabled({ store: 'lmdb', host: '0.0.0.0', demo: undefined }), false);
  assert.equal(demoEnabled({ store: 'dynamodb', host: '127.0.0.1', demo: undefined }), false);
  assert.equal(demoEnabled({ store: 'lmdb', host: '127.0.0.1', demo: false }), false);
  assert.equal(demoEnabled({ store: 'dynamodb', host: '0.0.0.0', demo: true }), true);
});

test('with demo off there is no page and no token endpoint', async () => {
  const s = await startOpsServer({ demo: false });
  try {
    assert.equal(s.server.ops.demo, false);
    assert.equal((await s.get('/', null)).status, 404);
    const res = await fetch(`${s.server.url}/demo/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"user":"mallory"}' });
    assert.equal(res.status, 404);
    assert.equal((await s.get('/demo/pending/bob', null)).status, 404);
  } finally {
    await s.close();
  }
});

test('with demo on: the page, its assets, a token that opens a session, and the pending counter', async () => {
  const s = await startOpsServer({ demo: true });
  try {
    assert.equal(s.server.ops.demo, true);
    const page = await s.get('/', null);
    assert.equal(page.status, 200);
    assert.match(page.type ?? '', /^text\/html/);
    assert.match(page.text, /<script type="module" src="\/demo\/app.js">/);
    assert.match((await s.get('/demo/app.js', null)).type ?? '', /^text\/javascript/);
    assert.match((await s.get('/demo/style.css', null)).type ?? '', /^text\/css/);
    let res = await fetch(`${s.server.url}/demo/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"user":"not valid!"}' });
    assert.equal(res.status, 400);
    res = await fetch(`${s.server.url}/demo/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"user":"pobox"}' });
    assert.equal(res.status, 403, 'the receipts sender is reserved');
    res = await fetch(`${s.server.url}/demo/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"user":"bob"}' });
    const { token, device } = (await res.json()) as { token: string; device: string };
    assert.equal(device, 'web');
    await s.server.postOffice.send({ from: 'alice', to: 'bob', id: 'x1', body: 'hi' });
    assert.deepEqual(JSON.parse((await s.get('/demo/pending/bob', null)).text), { user: 'bob', pending: 1, pendingBytes: 2, lastSeq: 1 });
    const bob = await RawClient.session(s.server.wsUrl, token);
    assert.deepEqual(
      bob.messages().map((m) => m.body),
      ['hi'],
    );
    await bob.close();
  } finally {
    await s.close();
  }
});
