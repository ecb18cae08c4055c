/**
 * Metrics fed by post office events over the real embedded engine: every counter and
 * gauge is checked against what the script did and against the store's own totals.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PostOffice } from '../../src/postoffice/post-office.js';
import { openLmdbStore } from '../../src/store/lmdb/index.js';
import { attachPostOffice, createMetrics, instrumentStore, seedPending } from '../../src/metrics/index.js';
import { parseProm, sample, sumOf } from '../support/prom-text.js';
import { ManualClock } from '../ops/helpers.js';
import { tempDir } from '../support/temp-dir.js';

const config = { limits: { maxBodyBytes: 100, maxMailboxMessages: 5, senderShare: 1 } };

test('counters and pending gauges follow sends, acks, rejections, expiry and purge exactly', async () => {
  const dir = tempDir();
  const clock = new ManualClock();
  const metrics = createMetrics();
  const po = new PostOffice({ store: instrumentStore(await openLmdbStore({ path: dir.path }), metrics), config, clock, sweeper: false });
  try {
    const attached = attachPostOffice(po, metrics);
    await po.registerDevice('bob', 'phone');
    await po.registerDevice('bob', 'laptop');
    await po.send({ from: 'alice', to: 'bob', id: 'm1', body: 'hello' }); // 5 bytes
    await po.send({ from: 'alice', to: 'bob', id: 'm2', body: 'hi there' }); // 8 bytes
    await po.send({ from: 'alice', to: 'bob', id: 'm2', body: 'hi there' }); // duplicate: not counted
    await po.send({ from: 'alice', to: 'bob', id: 'm3', body: 'third!', ttlSeconds: 1 }); // 6 bytes, expires
    await assert.rejects(po.send({ from: 'alice', to: 'bob', id: 'big', body: 'x'.repeat(101) }), { code: 'PAYLOAD_TOO_LARGE' });
    await assert.rejects(po.send({ from: 'alice', to: 'no spaces', id: 'bad', body: 'x' }), { code: 'BAD_REQUEST' });
    await po.send({ from: 'carol', to: 'dave', id: 'd1', body: 'abc' }); // 3 bytes, dave has no device
    for (let i = 0; i < 5; i++) await po.send({ from: 'carol', to: 'erin', id: `e${i}`, body: 'zz' });
    await assert.rejects(po.send({ from: 'carol', to: 'erin', id: 'e6', body: 'zz' }), { code: 'MAILBOX_FULL' });

    // phone acks 2: nothing deleted yet (laptop has not); laptop acks 2: m1, m2 deleted.
    await po.ack('bob', 'phone', 2);
    await po.ack('bob', 'phone', 2); // did not move: not an ack event
    await po.ack('bob', 'laptop', 2);
    clock.advance(2000);
    assert.equal(await po.sweepNow(), 1); // m3
    await po.purge('erin'); // 5 messages, 10 bytes

    const s = parseProm((await metrics.scrape()).body);
    assert.equal(sample(s, 'pobox_messages_sent_total'), 3 + 1 + 5);
    assert.equal(sample(s, 'pobox_acks_total'), 2);
    assert.equal(sample(s, 'pobox_messages_acked_total'), 2);
    assert.equal(sample(s, 'pobox_messages_expired_total'), 1);
    assert.equal(sample(s, 'pobox_messages_removed_total', { reason: 'purge' }), 5);
    assert.equal(sample(s, 'pobox_messages_rejected_total', { reason: 'size' }), 1);
    assert.equal(sample(s, 'pobox_messages_rejected_total', { reason: 'bad_input' }), 1);
    assert.equal(sample(s, 'pobox_messages_rejected_total', { reason: 'quota' }), 1);
    assert.equal(sumOf(s, 'pobox_messages_rejected_total'), 3);
    // Only dave's message is left.
    assert.equal(sample(s, 'pobox_pending_messages'), 1);
    assert.equal(sample(s, 'pobox_pending_bytes'), 3);
    const dave = await po.stats('dave');
    assert.equal(dave.pending, 1);
    assert.equal(sample(s, 'pobox_oldest_pending_age_seconds'), dave.oldestAgeMs! / 1000);
    assert.equal(sample(s, 'pobox_oldest_pending_age_seconds'), 2); // sent at t0, clock is t0 + 2 s
    // The store wrapper timed each call by engine and operation.
    assert.equal(sample(s, 'pobox_store_operation_seconds_count', { engine: 'lmdb', op: 'ack', outcome: 'ok' }), 3);
    assert.equal(sample(s, 'pobox_store_operation_seconds_count', { engine: 'lmdb', op: 'registerDevice', outcome: 'ok' }), 2);
    assert.ok((sample(s, 'pobox_store_operation_seconds_count', { engine: 'lmdb', op: 'append', outcome: 'ok' }) ?? 0) >= 1);
    attached.detach();
  } finally {
    await po.close();
    await dir.remove();
  }
});

test('seedPending starts the gauges from what a reopened store holds', async () => {
  const dir = tempDir();
  const clock = new ManualClock();
  let po = new PostOffice({ store: await openLmdbStore({ path: dir.path }), clock, sweeper: false });
  try {
    for (const to of ['u1', 'u2', 'u3']) await po.send({ from: 'x', to, id: `i-${to}`, body: `to ${to}` });
    clock.advance(5000);
    await po.send({ from: 'x', to: 'u1', id: 'later', body: 'later' });
    await po.close();

    const metrics = createMetrics();
    po = new PostOffice({ store: await openLmdbStore({ path: dir.path }), clock, sweeper: false });
    const attached = attachPostOffice(po, metrics);
    const seeded = await seedPending(po.store, metrics, attached, clock.now(), { pageSize: 2 });
    assert.deepEqual(seeded, { users: 3, pending: 4, pendingBytes: 5 * 3 + 5, complete: true });
    clock.advance(1000);
    const s = parseProm((await metrics.scrape()).body);
    assert.equal(sample(s, 'pobox_pending_messages'), 4);
    assert.equal(sample(s, 'pobox_pending_bytes'), 20);
    assert.equal(sample(s, 'pobox_oldest_pending_age_seconds'), 6);
    attached.detach();
  } finally {
    await po.close();
    await dir.remove();
  }
});

test('the oldest-pending gauge moves on when the oldest messages are acked, and is 0 when nothing is pending', async () => {
  const dir = tempDir();
  const clock = new ManualClock();
  const metrics = createMetrics();
  const po = new PostOffice({ store: await openLmdbStore({ path: dir.path }), clock, sweeper: false });
  try {
    attachPostOffice(po, metrics);
    await po.registerDevice('a', 'd');
    await po.send({ from: 'x', to: 'a', id: '1', body: 'one' });
    clock.advance(10_000);
    await po.send({ from: 'x', to: 'b', id: '2', body: 'two' });
    clock.advance(1_000);
    await po.send({ from: 'x', to: 'a', id: '3', body: 'three' });
    clock.advance(1_000);
    let s = parseProm((await metrics.scrape()).body);
    assert.equal(sample(s, 'pobox_oldest_pending_age_seconds'), 12);
    await po.ack('a', 'd', 1); // a's oldest is now message 3 (1 s old); b's (2 s) is the oldest
    s = parseProm((await metrics.scrape()).body);
    assert.equal(sample(s, 'pobox_oldest_pending_age_seconds'), 2);
    await po.purge('b');
    await po.ack('a', 'd', 2);
    s = parseProm((await metrics.scrape()).body);
    assert.equal(sample(s, 'pobox_oldest_pending_age_seconds'), 0);
    assert.equal(sample(s, 'pobox_pending_messages'), 0);
  } finally {
    await po.close();
    await dir.remove();
  }
});

test('each metrics instance has its own registry', async () => {
  const a = createMetrics();
  const b = createMetrics();
  a.sent.inc(3);
  const sa = parseProm((await a.scrape()).body);
  const sb = parseProm((await b.scrape()).body);
  assert.equal(sample(sa, 'pobox_messages_sent_total'), 3);
  assert.equal(sample(sb, 'pobox_messages_sent_total'), 0);
});
