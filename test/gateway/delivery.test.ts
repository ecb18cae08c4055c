/**
 * Delivery at the protocol level: raw frames in, exact order out (ARCHITECTURE.md "The delivery state machine").
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { api, ADMIN_KEY, autoAck, sendMany, startTestServer, type TestServer } from './helpers.js';
import { RawClient } from '../support/raw-client.js';
import { waitFor } from '../support/wait.js';

/** Ack every `every` messages, and at caughtUp, as a well-behaved client would. */

/** Send `n` frames from a connected client and wait for every `accepted`. */
async function wsSendMany(c: RawClient, to: string, n: number, prefix: string): Promise<Map<string, number>> {
  const from = c.frames.length;
  for (let i = 0; i < n; i++) c.send({ type: 'send', id: `${prefix}-${i}`, to, body: `${prefix} ${i}` });
  await c.until(() => c.frames.slice(from).filter((f) => f.type === 'accepted' || f.type === 'error').length >= n, `${n} accepted`, 60_000);
  const out = new Map<string, number>();
  for (const f of c.frames.slice(from)) {
    if (f.type === 'error') throw new Error(`send failed: ${JSON.stringify(f)}`);
    if (f.type === 'accepted') {
      assert.equal(f.durable, true);
      out.set(f.id, f.seq);
    }
  }
  return out;
}

function assertExactlyOnceInOrder(c: RawClient, expected: number[], label: string): void {
  const seqs = c.messages().map((m) => m.seq);
  assert.equal(new Set(seqs).size, seqs.length, `${label}: a message was sent twice`);
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, `${label}: out of order at ${i}: ${seqs[i - 1]} then ${seqs[i]}`);
  assert.deepEqual(
    seqs,
    [...expected].sort((a, b) => a - b),
    `${label}: wrong set of messages`,
  );
}

describe('delivery', () => {
  let server: TestServer;
  before(async () => {
    // A window of 256, smaller than the 1,000-message backlogs below, so drains are caught mid-window.
    server = await startTestServer({ session: { windowMessages: 256 }, limits: { sendRate: { perSecond: 100_000, burst: 100_000 } } });
  });
  after(async () => {
    await server.stop();
  });

  test('bob offline with two devices: 2,000 messages drained and live exactly once in order; copies per device; deleted after both ack', async () => {
    const bobPhone = await server.token('bob', 'phone');
    const bobLaptop = await server.token('bob', 'laptop');
    for (const [device, token] of [
      ['phone', bobPhone],
      ['laptop', bobLaptop],
    ] as const) {
      const r = await api(server, 'PUT', `/v1/users/bob/devices/${device}`, { token });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    const alice = await RawClient.connect(server.url, await server.token('alice', 'phone'));
    const first = await wsSendMany(alice, 'bob', 1000, 'a');
    assert.equal(first.size, 1000);

    const phone = await RawClient.open(server.url, bobPhone);
    phone.send({ type: 'hello', protocol: 1 });
    const welcome = await phone.waitFor((f) => f.type === 'welcome');
    assert.equal(welcome.type === 'welcome' && welcome.cursor, 0);
    // The phone is mid-drain (a full window of 256, not acked yet) when alice sends the
    // next 1,000; it starts acking while her sends are still being committed.
    await phone.until(() => phone.messages().length >= 256, 'a full window');
    const sending = wsSendMany(alice, 'bob', 1000, 'b');
    autoAck(phone, 64);
    phone.send({ type: 'ack', upTo: phone.messages().at(-1)!.seq });
    const second = await sending;
    const all = [...first.values(), ...second.values()];
    await phone.until(() => phone.messages().length >= 2000, '2000 messages', 60_000);
    await phone.roundTrip();
    assertExactlyOnceInOrder(phone, all, 'phone');
    const caughtUps = phone.frames.filter((f) => f.type === 'caughtUp');
    assert.equal(caughtUps.length, 1, 'exactly one caughtUp');
    // caughtUp comes after the backlog that existed at connect (the first 1,000).
    const cuIndex = phone.frames.findIndex((f) => f.type === 'caughtUp');
    const before = phone.frames
      .slice(0, cuIndex)
      .filter((f) => f.type === 'message')
      .map((f) => (f as { seq: number }).seq);
    for (const seq of first.values()) assert.ok(before.includes(seq), `seq ${seq} of the backlog arrived after caughtUp`);
    // The messages carry the sender from the token.
    assert.ok(phone.messages().every((m) => m.from === 'alice'));
    const maxSeq = Math.max(...all);
    phone.send({ type: 'ack', upTo: maxSeq });
    await phone.waitFor((f) => f.type === 'acked' && f.cursor === maxSeq);

    let stats = await api(server, 'GET', '/v1/users/bob/stats', { token: ADMIN_KEY });
    assert.equal(stats.status, 200);
    assert.equal(stats.body.pending, 2000, 'kept for the laptop');

    const laptop = await RawClient.open(server.url, bobLaptop);
    autoAck(laptop, 100);
    laptop.send({ type: 'hello' });
    await laptop.waitFor((f) => f.type === 'caughtUp');
    await laptop.roundTrip();
    assertExactlyOnceInOrder(laptop, all, 'laptop');
    laptop.send({ type: 'ack', upTo: maxSeq });
    await laptop.waitFor((f) => f.type === 'acked' && f.cursor === maxSeq);

    stats = await api(server, 'GET', '/v1/users/bob/stats', { token: ADMIN_KEY });
    assert.equal(stats.body.pending, 0, 'deleted after both devices acked');
    assert.deepEqual(
      stats.body.devices.map((d: { device: string; cursor: number }) => [d.device, d.cursor]),
      [
        ['laptop', maxSeq],
        ['phone', maxSeq],
      ],
    );
    await Promise.all([alice.close(), phone.close(), laptop.close()]);
  });

  test('a device that disconnects mid-drain without acking gets those messages again', async () => {
    const token = await server.token('carol', 'phone');
    await sendMany(server, 'dave', 'carol', 300, 'mid');
    const c1 = await RawClient.connect(server.url, token);
    await c1.until(() => c1.messages().length >= 100, '100 messages');
    const firstSeen = c1.messages().map((m) => m.seq);
    c1.ws.terminate();
    await c1.waitClose();
    const c2 = await RawClient.connect(server.url, token);
    autoAck(c2, 50);
    await c2.waitFor((f) => f.type === 'caughtUp');
    const again = c2.messages().map((m) => m.seq);
    assert.equal(again.length, 300);
    for (const seq of firstSeen) assert.ok(again.includes(seq), `unacked seq ${seq} was not delivered again`);
    await c2.close();
  });

  test('acked messages are not delivered again after a reconnect', async () => {
    const token = await server.token('erin', 'phone');
    const seqs = await sendMany(server, 'dave', 'erin', 20, 'ack');
    const c1 = await RawClient.connect(server.url, token);
    await c1.waitFor((f) => f.type === 'caughtUp');
    const upTo = seqs.sort((a, b) => a - b)[9]!;
    c1.send({ type: 'ack', upTo });
    await c1.waitFor((f) => f.type === 'acked' && f.cursor === upTo);
    await c1.close();
    const c2 = await RawClient.connect(server.url, token);
    await c2.waitFor((f) => f.type === 'caughtUp');
    assert.deepEqual(
      c2.messages().map((m) => m.seq),
      seqs.filter((s) => s > upTo),
    );
    await c2.close();
  });

  test('flow control: a client that never acks receives at most the window', async () => {
    const small = await startTestServer({ session: { windowMessages: 10, windowBytes: 1024 * 1024 } });
    try {
      await sendMany(small, 'dave', 'frank', 50, 'fc');
      const c = await RawClient.connect(small.url, await small.token('frank', 'phone'));
      await c.until(() => c.messages().length >= 10, '10 messages');
      await c.roundTrip();
      assert.equal(c.messages().length, 10, 'more than the window in flight');
      assert.equal(c.frames.filter((f) => f.type === 'caughtUp').length, 0);
      // Acking 5 opens exactly 5 slots.
      c.send({ type: 'ack', upTo: c.messages()[4]!.seq });
      await c.until(() => c.messages().length >= 15, '15 messages');
      await c.waitFor((f) => f.type === 'acked');
      await c.roundTrip();
      assert.equal(c.messages().length, 15);
      await c.close();
    } finally {
      await small.stop();
    }
  });

  test('flow control by bytes: one large message at a time when the byte window is small', async () => {
    const small = await startTestServer({ session: { windowMessages: 100, windowBytes: 2048 } });
    try {
      const big = 'x'.repeat(1500);
      for (let i = 0; i < 5; i++) {
        const r = await api(small, 'POST', '/v1/messages', { token: await small.token('gus', 'phone'), body: { id: `big-${i}`, to: 'hank', body: big } });
        assert.equal(r.status, 201);
      }
      const c = await RawClient.connect(small.url, await small.token('hank', 'phone'));
      await c.until(() => c.messages().length >= 1, 'first message');
      await c.roundTrip();
      assert.equal(c.messages().length, 1, 'a second 1500-byte message would exceed the 2048-byte window');
      c.send({ type: 'ack', upTo: c.messages()[0]!.seq });
      await c.until(() => c.messages().length >= 2, 'second message');
      await c.close();
    } finally {
      await small.stop();
    }
  });

  test('socket backpressure: a client that stops reading makes the server stop writing, not buffer', async () => {
    const maxBufferedBytes = 64 * 1024;
    const big = await startTestServer({
      session: { windowMessages: 100_000, windowBytes: 1024 * 1024 * 1024, maxBufferedBytes },
      postOffice: { limits: { maxMailboxMessages: 100_000, senderShare: 1 } }, // one sender fills it
    });
    try {
      const total = 20_000;
      const body = 'b'.repeat(1000);
      for (let i = 0; i < total; i += 1000) {
        await Promise.all(Array.from({ length: 1000 }, (_, j) => big.postOffice.send({ from: 'dave', to: 'slow', id: `bp-${i + j}`, body })));
      }
      const c = await RawClient.connect(big.url, await big.token('slow', 'phone'));
      c.ws.pause();
      const session = () => big.sessions().find((s) => s.user === 'slow')!;
      await waitFor(() => session().info().blockedBy === 'socket', 'the session to block on the socket');
      assert.ok(session().ws.bufferedAmount <= maxBufferedBytes + 2048, `server buffered ${session().ws.bufferedAmount} bytes`);
      assert.ok(session().info().sent < total, 'everything was written although the client read nothing');
      autoAck(c, 500);
      c.ws.resume();
      await c.until(() => c.messages().length >= total, 'all messages', 60_000);
      await c.waitFor((f) => f.type === 'caughtUp');
      const seqs = c.messages().map((m) => m.seq);
      assert.equal(new Set(seqs).size, total);
      for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!);
      await c.close();
    } finally {
      await big.stop();
    }
  });

  test('a second connection of the same device replaces the first with close code 4000', async () => {
    const token = await server.token('ivan', 'phone');
    const c1 = await RawClient.connect(server.url, token);
    const c2 = await RawClient.connect(server.url, token);
    const closed = await c1.waitClose();
    assert.equal(closed.code, 4000);
    // The new connection works.
    await c2.roundTrip();
    assert.equal(c2.closed, undefined);
    await c2.close();
  });

  test('live wake-ups: a message sent while connected arrives without a reconnect; targeted messages reach only their device', async () => {
    const phoneTok = await server.token('judy', 'phone');
    const tabletTok = await server.token('judy', 'tablet');
    const phone = await RawClient.connect(server.url, phoneTok);
    const tablet = await RawClient.connect(server.url, tabletTok);
    await phone.waitFor((f) => f.type === 'caughtUp');
    await tablet.waitFor((f) => f.type === 'caughtUp');
    const fast: Array<[string, boolean]> = [];
    const stop = server.events.on('delivered', (e) => {
      if (e.user === 'judy') fast.push([e.device, e.fast]);
    });
    const sender = await RawClient.connect(server.url, await server.token('ken', 'phone'));
    sender.send({ type: 'send', id: 'to-tablet', to: 'judy', toDevice: 'tablet', body: 'only tablet' });
    sender.send({ type: 'send', id: 'to-all', to: 'judy', body: 'everyone' });
    await sender.until(() => sender.frames.filter((f) => f.type === 'accepted').length === 2, 'accepted');
    await tablet.until(() => tablet.messages().length === 2, 'tablet gets both');
    await phone.until(() => phone.messages().length === 1, 'phone gets one');
    await phone.roundTrip();
    assert.deepEqual(
      phone.messages().map((m) => m.id),
      ['to-all'],
    );
    assert.deepEqual(
      tablet.messages().map((m) => m.id),
      ['to-tablet', 'to-all'],
    );
    stop();
    // Both live messages went out from the wake-up itself, without a store read.
    assert.deepEqual(
      fast.filter(([d]) => d === 'tablet'),
      [
        ['tablet', true],
        ['tablet', true],
      ],
    );
    await Promise.all([phone.close(), tablet.close(), sender.close()]);
  });

  test('welcome reports an epoch change when the client remembers another epoch', async () => {
    const token = await server.token('nina', 'phone');
    const c1 = await RawClient.connect(server.url, token);
    const w1 = c1.frames.find((f) => f.type === 'welcome');
    assert.ok(w1?.type === 'welcome' && w1.epochChanged === false && w1.epoch.length > 0);
    await c1.close();
    const c2 = await RawClient.connect(server.url, token, { epoch: w1.epoch, lastSeq: 0 });
    const w2 = c2.frames.find((f) => f.type === 'welcome');
    assert.ok(w2?.type === 'welcome' && w2.epochChanged === false);
    await c2.close();
    const c3 = await RawClient.connect(server.url, token, { epoch: 'some-other-epoch', lastSeq: 5 });
    const w3 = c3.frames.find((f) => f.type === 'welcome');
    assert.ok(w3?.type === 'welcome' && w3.epochChanged === true);
    await c3.close();
  });

  test('heartbeat: a connection that answers no pings is dropped', async () => {
    const hb = await startTestServer({ session: { heartbeatMs: 100 } });
    try {
      const c = await RawClient.connect(hb.url, await hb.token('otto', 'phone'));
      assert.equal(hb.sessions().length, 1);
      // Stop reading: the client no longer answers pings, as a vanished peer would not.
      c.ws.pause();
      await waitFor(() => hb.sessions().length === 0, 'the silent connection to be dropped', 10_000);
      c.ws.terminate();
    } finally {
      await hb.stop();
    }
  });

  test('a resent send id is a duplicate with the original seq', async () => {
    const c = await RawClient.connect(server.url, await server.token('liam', 'phone'));
    c.send({ type: 'send', id: 'dup-1', to: 'mona', body: 'hi' });
    const a = await c.waitFor((f) => f.type === 'accepted');
    const n = c.frames.length;
    c.send({ type: 'send', id: 'dup-1', to: 'mona', body: 'hi' });
    const b = await c.waitFor((f) => f.type === 'accepted', 'accepted', { from: n });
    assert.ok(a.type === 'accepted' && b.type === 'accepted');
    assert.equal(a.duplicate, false);
    assert.equal(b.duplicate, true);
    assert.equal(b.seq, a.seq);
    await c.close();
  });
});
