/**
 * GET /metrics after a scripted session over the real server: sends, live and backlog
 * deliveries, acks, rejections of every kind, a reconnect. Every number is checked
 * against what the script did.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseProm, sample, sumOf } from '../support/prom-text.js';
import { startOpsServer } from './server-helpers.js';
import { RawClient } from '../support/raw-client.js';
import { waitFor } from './helpers.js';

test('/metrics needs the admin key', async () => {
  const s = await startOpsServer();
  try {
    assert.equal((await s.get('/metrics', null)).status, 401);
    assert.equal((await s.get('/metrics', s.sendKey)).status, 403);
    const ok = await s.get('/metrics');
    assert.equal(ok.status, 200);
    assert.match(ok.type ?? '', /^text\/plain; version=0\.0\.4/);
    assert.match(ok.text, /# TYPE pobox_messages_sent_total counter/);
    assert.match(ok.text, /pobox_process_cpu_user_seconds_total/);
  } finally {
    await s.close();
  }
});

test('a scripted session shows up in /metrics exactly', async () => {
  const s = await startOpsServer({
    limits: { sendRate: { perSecond: 0.01, burst: 6 } },
    postOffice: { limits: { maxBodyBytes: 100, maxMailboxMessages: 4, senderShare: 1 } },
  });
  const clients: RawClient[] = [];
  try {
    const { wsUrl, url } = s.server;
    // alice: 6 send frames reach the post office's door; the 7th is over the rate limit.
    const alice = await RawClient.session(wsUrl, await s.token('alice', 'laptop'));
    clients.push(alice);
    for (let i = 1; i <= 3; i++) assert.equal((await alice.sendAndWait({ id: `m${i}`, to: 'bob', body: `hello ${i}` })).type, 'accepted'); // sent 3
    assert.equal((await alice.sendAndWait({ id: 'big', to: 'bob', body: 'x'.repeat(101) })).type, 'error'); // size
    assert.equal((await alice.sendAndWait({ id: 'm4', to: 'bob', body: 'hello 4' })).type, 'accepted'); // sent 4
    const full = await alice.sendAndWait({ id: 'm5', to: 'bob', body: 'hello 5' }); // quota
    assert.equal(full.type === 'error' && full.code, 'MAILBOX_FULL');
    const limited = await alice.sendAndWait({ id: 'm6', to: 'bob', body: 'hello 6' }); // rate
    assert.equal(limited.type === 'error' && limited.code, 'RATE_LIMITED');
    alice.send({ type: 'send', id: 'bad-to', to: 'not a user!', body: 'x' }); // bad input (frame schema)
    await alice.waitFor((f) => f.type === 'error' && f.id === 'bad-to', 'bad-to refused');
    // HTTP: no credentials (auth), a user token with a broken body (bad input).
    let res = await fetch(`${url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'h1', to: 'bob', body: 'x' }) });
    assert.equal(res.status, 401);
    res = await fetch(`${url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await s.token('alice', 'script')}` },
      body: JSON.stringify({ id: 'h2', to: 'bob' }),
    });
    assert.equal(res.status, 400);

    // bob comes online: a drain of 4, then he acks them all (one device: all 4 deleted).
    const bob = await RawClient.session(wsUrl, await s.token('bob', 'phone'));
    clients.push(bob);
    assert.deepEqual(
      bob.messages().map((m) => m.id),
      ['m1', 'm2', 'm3', 'm4'],
    );
    bob.send({ type: 'ack', upTo: 4 });
    await bob.waitFor((f) => f.type === 'acked' && f.cursor === 4, 'acked 4');
    // carol sends 2 while bob is live: live deliveries. bob acks one of them.
    const carol = await RawClient.session(wsUrl, await s.token('carol', 'web'));
    clients.push(carol);
    await carol.sendAndWait({ id: 'c1', to: 'bob', body: 'live one' });
    await carol.sendAndWait({ id: 'c2', to: 'bob', body: 'live two' });
    await bob.waitFor((f) => f.type === 'message' && f.id === 'c2', 'c2 live');
    bob.send({ type: 'ack', upTo: 5 });
    await bob.waitFor((f) => f.type === 'acked' && f.cursor === 5, 'acked 5');
    // bob drops and reconnects: c2 comes again from the backlog (drain of 1).
    await bob.close();
    const bob2 = await RawClient.session(wsUrl, await s.token('bob', 'phone'));
    clients.push(bob2);
    assert.deepEqual(
      bob2.messages().map((m) => m.id),
      ['c2'],
    );
    // A connection with a forged token is refused.
    const forged = await RawClient.open(wsUrl, 'not-a-token');
    await waitFor(() => forged.closed, 'forged connection closed');

    const m = parseProm((await s.get('/metrics')).text);
    assert.equal(sample(m, 'pobox_messages_sent_total'), 6);
    assert.equal(sample(m, 'pobox_messages_rejected_total', { reason: 'size' }), 1);
    assert.equal(sample(m, 'pobox_messages_rejected_total', { reason: 'quota' }), 1);
    assert.equal(sample(m, 'pobox_messages_rejected_total', { reason: 'rate' }), 1);
    assert.equal(sample(m, 'pobox_messages_rejected_total', { reason: 'auth' }), 1);
    assert.equal(sample(m, 'pobox_messages_rejected_total', { reason: 'bad_input' }), 2);
    assert.equal(sumOf(m, 'pobox_messages_rejected_total'), 6);
    assert.equal(sample(m, 'pobox_messages_delivered_total', { path: 'drain' }), 4 + 1);
    assert.equal(sample(m, 'pobox_messages_delivered_total', { path: 'live' }), 2);
    assert.equal(sample(m, 'pobox_live_delivery_latency_seconds_count'), 2);
    assert.equal(sample(m, 'pobox_acks_total'), 2);
    assert.equal(sample(m, 'pobox_messages_acked_total'), 5);
    assert.equal(sample(m, 'pobox_pending_messages'), 1);
    assert.equal(sample(m, 'pobox_pending_bytes'), Buffer.byteLength('live two'));
    // Drains: alice, bob, carol, bob again (each connection drains once).
    assert.equal(sample(m, 'pobox_drain_duration_seconds_count'), 4);
    assert.equal(sample(m, 'pobox_drain_messages_sum'), 5);
    // Connections: alice, bob, carol, bob2 accepted; bob's first one closed; the forged one refused.
    assert.equal(sample(m, 'pobox_connections_total'), 4);
    assert.equal(sample(m, 'pobox_connections'), 3);
    assert.equal(sample(m, 'pobox_connections_refused_total', { reason: 'unauthorized' }), 1);
    assert.equal(sample(m, 'pobox_sessions', { state: 'live' }), 3);
    assert.equal(sample(m, 'pobox_online_users'), 3);
    assert.equal(sample(m, 'pobox_oldest_pending_age_seconds')! >= 0, true);
    assert.ok((sample(m, 'pobox_store_operation_seconds_count', { engine: 'lmdb', op: 'append', outcome: 'ok' }) ?? 0) >= 1);
    // Every stored message was published; only c1 and c2 found bob subscribed.
    assert.equal(sample(m, 'pobox_bus_publish_seconds_count', { bus: 'memory' }), 6);
    assert.equal(sample(m, 'pobox_bus_wakeup_latency_seconds_count', { bus: 'memory' }), 2);
  } finally {
    for (const c of clients) await c.close();
    await s.close();
  }
});
