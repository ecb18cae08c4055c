/**
 * Structured logs of a scripted session: every connection line and every error line
 * carries the ids needed to follow it (request id; user and device once known), and no
 * line ever holds a message body, a token or an API key.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { startOpsServer } from './server-helpers.js';
import { RawClient } from '../support/raw-client.js';
import { waitFor } from './helpers.js';

interface Line {
  level: number;
  msg: string;
  requestId?: string;
  user?: string;
  device?: string;
  [k: string]: unknown;
}

test('log lines name user, device and request, and never bodies or credentials', async () => {
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      raw.push(String(chunk));
      done();
    },
  });
  const s = await startOpsServer({ logLevel: 'debug' }, { logDestination: sink });
  const secrets: string[] = [s.adminKey, s.sendKey];
  const clients: RawClient[] = [];
  try {
    const { wsUrl, url } = s.server;
    const aliceToken = await s.token('alice', 'laptop');
    const bobToken = await s.token('bob', 'phone');
    secrets.push(aliceToken, bobToken);
    const alice = await RawClient.session(wsUrl, aliceToken);
    clients.push(alice);
    const bodies = ['BODY-over-websocket-7f3a', 'BODY-over-http-91c2', 'BODY-too-big-'.padEnd(600_000, 'z'), 'BODY-bad-frame-5d1e'];
    secrets.push(...bodies.map((b) => b.slice(0, 40)));
    await alice.sendAndWait({ id: 'w1', to: 'bob', body: bodies[0]! });
    alice.send({ type: 'send', id: 'bad', to: 'no such user!', body: bodies[3]! }); // invalid frame: an error line
    await alice.waitFor((f) => f.type === 'error' && f.id === 'bad', 'bad frame refused');
    alice.send({ type: 'ack', upTo: 99 }); // beyond the last seq: an error
    await alice.waitFor((f) => f.type === 'error' && f.code === 'BAD_REQUEST' && f.id === undefined, 'bad ack refused');
    // HTTP: a send with a token, a refused one with a too-large body, one with a forged token.
    let res = await fetch(`${url}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${aliceToken}`, 'content-type': 'application/json', 'x-request-id': 'req-http-1' },
      body: JSON.stringify({ id: 'h1', to: 'bob', body: bodies[1] }),
    });
    assert.equal(res.status, 201);
    res = await fetch(`${url}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${aliceToken}`, 'content-type': 'application/json', 'x-request-id': 'req-http-2' },
      body: JSON.stringify({ id: 'h2', to: 'bob', body: bodies[2] }),
    });
    assert.equal(res.status, 413);
    // HTTP takes no token in the URL (401), and the URL holding one must not be logged either.
    res = await fetch(`${url}/v1/users/bob/stats?token=${encodeURIComponent(bobToken)}`, { headers: { 'x-request-id': 'req-http-3' } });
    assert.equal(res.status, 401);
    res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${s.sendKey}` } });
    assert.equal(res.status, 403);
    // bob connects with the token in the URL, gets both messages, and leaves; a forged token is refused.
    const bob = await RawClient.session(wsUrl, bobToken);
    assert.equal(bob.messages().length, 2);
    await bob.close();
    const forged = await RawClient.open(wsUrl, `${bobToken}x`);
    await waitFor(() => forged.closed, 'forged connection closed');
    await alice.close();
    clients.length = 0;
    await waitFor(() => raw.join('').includes('"connection closed"') && raw.join('').split('"connection closed"').length - 1 >= 2, 'both close lines');
  } finally {
    for (const c of clients) await c.close();
    await s.close();
  }

  const text = raw.join('');
  for (const secret of secrets) assert.ok(!text.includes(secret), `a log line holds a body or credential: ${secret.slice(0, 24)}...`);
  const lines = text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);

  const connectionLines = lines.filter((l) => /^connection /.test(l.msg));
  assert.deepEqual(
    connectionLines.map((l) => l.msg).sort(),
    ['connection closed', 'connection closed', 'connection opened', 'connection opened', 'connection refused: unauthorized'].sort(),
  );
  for (const l of connectionLines) {
    assert.ok(l.requestId, `no request id on: ${JSON.stringify(l)}`);
    if (l.msg !== 'connection refused: unauthorized') assert.ok(l.user && l.device, `no user/device on: ${JSON.stringify(l)}`);
  }
  // One id follows a connection from open to close.
  const aliceIds = new Set(connectionLines.filter((l) => l.user === 'alice').map((l) => l.requestId));
  assert.equal(aliceIds.size, 1);

  const errorLines = lines.filter((l) => l.level >= 50 || /rejected|failed|error/i.test(l.msg));
  assert.ok(errorLines.length >= 5, `expected error lines, got ${JSON.stringify(lines.map((l) => l.msg))}`);
  for (const l of errorLines) {
    assert.ok(l.requestId, `no request id on: ${JSON.stringify(l)}`);
    // A frame error happens inside a session: its user and device are known.
    if (l.msg === 'frame rejected') assert.deepEqual([l.user, l.device], ['alice', 'laptop']);
  }
  const http = errorLines.filter((l) => typeof l.requestId === 'string' && l.requestId.startsWith('req-http-'));
  assert.deepEqual(http.map((l) => l.requestId).sort(), ['req-http-2', 'req-http-3']);
  assert.deepEqual(http.find((l) => l.requestId === 'req-http-2')!.user, 'alice');
});
