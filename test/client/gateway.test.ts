/**
 * The SDK against the real gateway, in-process on 127.0.0.1 with a fresh data dir:
 * redelivery after a lost connection, durable sends, resends, replacement, backoff and
 * fail-over between nodes.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { MemoryBus } from '../../src/bus/memory.js';
import { ConnectionClosedError, connect, type PoboxClient } from '../../src/client/index.js';
import { PostOffice } from '../../src/postoffice/post-office.js';
import { openStore } from '../../src/store/open.js';
import { mintToken } from '../../src/gateway/auth.js';
import { startServer } from '../../src/server/compose.js';
import { gate, record, waitFor } from './helpers.js';
import { newSecret, Resources, sessionsOf, startGateway, tempDir } from './gateway-helpers.js';

const res = new Resources();
afterEach(() => res.closeAll());

async function sendMany(alice: PoboxClient, to: string, n: number, prefix = 'm'): Promise<number[]> {
  const receipts = await Promise.all(Array.from({ length: n }, (_, i) => alice.send({ to, body: `${prefix}${i}`, id: `${prefix}-${i}` })));
  return receipts.map((r) => r.seq);
}

function assertEachOnceInOrder(seqs: number[], expected: number[]): void {
  assert.deepEqual(seqs, expected, 'each message handed over exactly once, in seq order');
}

describe('client SDK with the gateway', () => {
  it('hands each message over once when the connection drops mid-drain before the ack', async () => {
    const gw = await startGateway(res);
    const alice = await gw.client('alice', 'laptop');
    const sent = await sendMany(alice, 'bob', 300);

    const bob = await gw.client('bob', 'phone');
    const rec = record(bob);
    const hold = gate();
    let cut = false;
    bob.on('message', async (m) => {
      if (m.seq !== sent[149]) return;
      // The application is busy with this message when its connection dies: it is not acked yet.
      await waitFor(() => sessionsOf(gw.server, 'bob').length === 1, 'bob session');
      sessionsOf(gw.server, 'bob')[0]!.ws.terminate();
      cut = true;
      await hold.promise;
    });
    await waitFor(() => cut, 'the connection cut mid-drain');
    await waitFor(() => bob.stats.reconnects === 1 && bob.state === 'open', 'bob welcomed again');
    hold.open();
    await waitFor(() => rec.messages.length === 300 && rec.caughtUp.length > 0, 'all 300 messages');
    assertEachOnceInOrder(
      rec.messages.map((m) => m.seq),
      sent,
    );
    // Seq 150 was never acked, so the server sent it again; the SDK kept it from the application.
    assert.ok(bob.stats.duplicatesDropped >= 1, `duplicates dropped: ${bob.stats.duplicatesDropped}`);
    assert.ok(bob.stats.received > 300, 'the server did send some messages twice');

    // Every message was acked in the end: the mailbox is empty once the acks are durable.
    await waitFor(() => bob.stats.serverCursor === sent.at(-1), 'the server confirming the last ack');
    bob.close();
    await waitFor(() => sessionsOf(gw.server, 'bob').length === 0, 'bob session ended');
    const stats = await gw.server.postOffice.stats('bob');
    assert.equal(stats.pending, 0);
  });

  it('delivers unacked messages again to a manual-ack device that disconnects', async () => {
    const gw = await startGateway(res);
    const alice = await gw.client('alice', 'laptop');
    const sent = await sendMany(alice, 'bob', 50);
    const first = await gw.client('bob', 'phone', { ack: 'manual' });
    const rec1 = record(first);
    await waitFor(() => rec1.caughtUp.length === 1, 'first drain');
    first.ack(sent[19]!); // the application finished 20 of them
    first.close();
    await waitFor(() => sessionsOf(gw.server, 'bob').length === 0, 'first session ended');

    const second = await gw.client('bob', 'phone');
    const rec2 = record(second);
    await waitFor(() => rec2.caughtUp.length === 1, 'second drain');
    assertEachOnceInOrder(
      rec2.messages.map((m) => m.seq),
      sent.slice(20),
    );
  });

  it('resolves send only after the message is durable, with its seq', async () => {
    const gw = await startGateway(res);
    const order: string[] = [];
    gw.server.postOffice.events.on('stored', ({ message }) => order.push(`stored ${message.id}`));
    const bob = await gw.client('bob', 'phone');
    const rec = record(bob);
    await bob.ready();
    const alice = await gw.client('alice', 'laptop');
    const receipt = await alice.send({ to: 'bob', body: 'hi', id: 'durable-1' }).then((r) => {
      order.push(`resolved ${r.id}`);
      return r;
    });
    assert.deepEqual(order, ['stored durable-1', 'resolved durable-1']);
    assert.equal(receipt.duplicate, false);
    await waitFor(() => rec.messages.length === 1, 'bob receives it');
    assert.equal(rec.messages[0]!.seq, receipt.seq);
    assert.equal(rec.messages[0]!.from, 'alice');
    await assert.rejects(alice.send({ to: 'bad user!', body: 'x' }), { name: 'PoboxError', code: 'BAD_REQUEST' });
  });

  it('resends an unanswered send after a reconnect and gets the same seq back', async () => {
    const gw = await startGateway(res);
    const bob = await gw.client('bob', 'phone');
    const rec = record(bob);
    await bob.ready();
    const alice = await gw.client('alice', 'laptop');
    await alice.ready();
    let storedSeq: number | undefined;
    // Cut alice's connection the moment the message is durable, before `accepted` is written.
    const off = gw.server.postOffice.events.on('stored', ({ message }) => {
      if (message.id !== 'resend-1') return;
      storedSeq = message.seq;
      sessionsOf(gw.server, 'alice')[0]!.ws.terminate();
    });
    const receipt = await alice.send({ to: 'bob', body: 'once', id: 'resend-1' });
    off();
    assert.equal(alice.stats.reconnects, 1, 'the reply came on a second connection');
    assert.deepEqual(receipt, { id: 'resend-1', seq: storedSeq, duplicate: true });
    await waitFor(() => rec.messages.length === 1, 'bob receives it');
    const probe = await alice.send({ to: 'bob', body: 'after', id: 'resend-2' });
    await waitFor(() => rec.messages.length === 2, 'bob receives the next one');
    assert.deepEqual(
      rec.messages.map((m) => m.seq),
      [storedSeq, probe.seq],
      'the resent message was stored once',
    );
  });

  it('does not reconnect after being replaced by another connection of the same device', async () => {
    const gw = await startGateway(res);
    const old = await gw.client('alice', 'laptop');
    const oldRec = record(old);
    await old.ready();
    const newer = await gw.client('alice', 'laptop');
    await newer.ready();
    await waitFor(() => old.state === 'closed', 'the old client closed');
    const err = oldRec.errors.find((e) => e instanceof ConnectionClosedError) as ConnectionClosedError | undefined;
    assert.equal(err?.closeCode, 4000);
    assert.equal(
      oldRec.states.some((s) => s.state === 'reconnecting'),
      false,
    );

    // Had the old client come back, it would have replaced the newer one; prove it did not.
    const bob = await gw.client('bob', 'phone');
    const bobRec = record(bob);
    await bob.ready();
    await newer.send({ to: 'bob', body: 'still here' });
    await waitFor(() => bobRec.messages.length === 1, 'bob receives');
    assert.equal(newer.state, 'live');
    assert.equal(newer.stats.reconnects, 0);
    assert.equal(sessionsOf(gw.server, 'alice').length, 1);
    assert.equal(old.stats.reconnects, 0);
    await assert.rejects(old.send({ to: 'bob', body: 'x' }), { code: 'UNAVAILABLE' });
  });

  it('stops with one UNAUTHORIZED error when the server refuses the token', async () => {
    const gw = await startGateway(res);
    const forged = await mintToken({ secret: newSecret(), user: 'bob', device: 'phone' });
    const client = connect(gw.server.wsUrl, forged, { WebSocket, backoffBaseMs: 10 });
    res.add(() => client.close());
    const rec = record(client);
    await assert.rejects(client.ready(), { code: 'UNAVAILABLE' });
    assert.equal(client.state, 'closed');
    assert.equal(rec.errors.length, 1);
    assert.ok(rec.errors[0] instanceof ConnectionClosedError);
    assert.equal(rec.errors[0].code, 'UNAUTHORIZED');
    assert.equal(rec.errors[0].closeCode, 4001);
    assert.equal(
      rec.states.some((s) => s.state === 'reconnecting'),
      false,
    );
  });

  it('backs off with a growing ceiling while no server answers, then connects when one does', async () => {
    // A port nobody listens on: start a server, note its port, stop it.
    const secret = newSecret();
    const dataDir = tempDir(res);
    const probe = await startServer({ port: 0, dataDir, logLevel: 'silent', auth: { secrets: [secret] } });
    const port = probe.port;
    await probe.close();
    const token = await mintToken({ secret, user: 'bob', device: 'phone' });
    const client = connect(`ws://127.0.0.1:${port}/ws`, token, { WebSocket, backoffBaseMs: 10, backoffMaxMs: 80 });
    res.add(() => client.close());
    const rec = record(client);
    await waitFor(() => rec.states.filter((s) => s.state === 'reconnecting').length >= 6, 'six failed attempts');
    const steps = rec.states.filter((s) => s.state === 'reconnecting').slice(0, 6);
    assert.deepEqual(
      steps.map((s) => s.ceilingMs),
      [10, 20, 40, 80, 80, 80],
    );
    for (const s of steps) assert.ok(s.delayMs! >= 0 && s.delayMs! < s.ceilingMs!, `delay ${s.delayMs} below ceiling ${s.ceilingMs}`);

    const gw = await startGateway(res, { secret, dataDir, config: { port } });
    await client.ready();
    assert.equal(client.url, `ws://127.0.0.1:${gw.server.port}/ws`);
  });

  it('fails over to the next URL when its node shuts down', async () => {
    // Two gateway nodes over one store and one in-process bus, like a scaled-out deployment.
    const secret = newSecret();
    const dataDir = tempDir(res);
    const store = await openStore({ engine: 'lmdb', path: `${dataDir}/lmdb` });
    const postOffice = new PostOffice({ store });
    res.add(() => postOffice.close());
    const bus = new MemoryBus();
    res.add(() => bus.close());
    const a = await startGateway(res, { secret, dataDir, start: { postOffice, bus } });
    const b = await startGateway(res, { secret, dataDir, start: { postOffice, bus } });

    const bob = await a.client('bob', 'phone', {}, [a.server.wsUrl, b.server.wsUrl]);
    const rec = record(bob);
    await bob.ready();
    assert.equal(bob.url, a.server.wsUrl);
    await a.server.close();
    await waitFor(() => bob.url === b.server.wsUrl && bob.state === 'live', 'bob live on node b');
    assert.ok(
      rec.states.some((s) => s.state === 'reconnecting' && s.closeCode === 1001),
      'node a said it was going away',
    );

    const alice = await b.client('alice', 'laptop');
    const { seq } = await alice.send({ to: 'bob', body: 'via b' });
    await waitFor(() => rec.messages.length === 1, 'bob receives via node b');
    assert.equal(rec.messages[0]!.seq, seq);
  });
});
