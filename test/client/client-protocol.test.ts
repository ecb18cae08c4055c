/**
 * The client against a scripted server: exact frames in, exact behaviour out. Covers
 * what the real gateway rarely produces on demand (epoch changes, refusals, silence).
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { connect, type PoboxClient } from '../../src/client/index.js';
import { ConnectionClosedError } from '../../src/client/client.js';
import { gate, record, waitFor } from './helpers.js';
import { message, ScriptedServer } from './scripted-server.js';

let server: ScriptedServer;
const clients: PoboxClient[] = [];

function client(options: Parameters<typeof connect>[2] = {}): PoboxClient {
  const c = connect(server.url, 'tok', { WebSocket, backoffBaseMs: 10, backoffMaxMs: 50, ...options });
  clients.push(c);
  return c;
}

beforeEach(async () => {
  server = await ScriptedServer.start();
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await server.close();
});

describe('client protocol', () => {
  it('says hello with the token in the URL, hands messages over in order and acks after the handler resolves', async () => {
    const c = client();
    const rec = record(c);
    const hold = gate();
    c.on('message', (m) => (m.seq === 2 ? hold.promise : undefined));
    const conn = await server.connection(1);
    assert.match(conn.url, /[?&]token=tok\b/);
    assert.deepEqual(await conn.next('hello'), { type: 'hello', protocol: 1 });
    conn.welcome();
    for (const s of [1, 2, 3]) conn.send(message(s));
    conn.send({ type: 'caughtUp', seq: 3 });
    await conn.next('ack');
    await waitFor(() => rec.messages.length === 2, 'two messages handed');
    assert.deepEqual(
      conn.frames.filter((f) => f.type === 'ack'),
      [{ type: 'ack', upTo: 1 }],
      'seq 2 is not acked while its handler runs',
    );
    assert.deepEqual(rec.caughtUp, [], 'caughtUp waits behind the messages before it');
    hold.open();
    await waitFor(() => rec.caughtUp.length === 1, 'caughtUp');
    assert.equal(c.state, 'live');
    assert.deepEqual((await conn.next('ack', 2)).upTo, 3);
    assert.deepEqual(
      rec.messages.map((m) => m.seq),
      [1, 2, 3],
    );
  });

  it('resumes with epoch and lastSeq, drops what the application already saw, and acks it', async () => {
    const c = client();
    const rec = record(c);
    const hold = gate();
    c.on('message', (m) => (m.seq === 2 ? hold.promise : undefined));
    const first = await server.connection(1);
    await first.next('hello');
    first.welcome({ epoch: 'e1' });
    for (const s of [1, 2, 3]) first.send(message(s));
    await waitFor(() => rec.messages.length === 2, 'seq 2 handed');
    first.socket.terminate(); // seq 2 is in the handler, seq 3 queued: neither acked
    const second = await server.connection(2);
    assert.deepEqual(await second.next('hello'), { type: 'hello', protocol: 1, epoch: 'e1', lastSeq: 2 });
    second.welcome({ epoch: 'e1', cursor: 1 });
    hold.open();
    for (const s of [2, 3, 4]) second.send(message(s));
    await waitFor(() => rec.messages.length === 4, 'seq 4 handed');
    assert.deepEqual(
      rec.messages.map((m) => m.seq),
      [1, 2, 3, 4],
    );
    await waitFor(() => second.frames.some((f) => f.type === 'ack' && f.upTo === 4), 'ack up to 4');
    assert.equal(c.stats.duplicatesDropped, 1);
    assert.equal(c.stats.reconnects, 1);
  });

  it('starts over when the server reports a new epoch', async () => {
    const c = client();
    const rec = record(c);
    const first = await server.connection(1);
    await first.next('hello');
    first.welcome({ epoch: 'e1' });
    for (const s of [1, 2]) first.send(message(s));
    await waitFor(() => rec.messages.length === 2, 'two messages');
    first.socket.terminate();
    const second = await server.connection(2);
    await second.next('hello');
    second.welcome({ epoch: 'e2', epochChanged: true });
    second.send(message(1, 'fresh'));
    await waitFor(() => rec.messages.length === 3, 'the new epoch seq 1');
    assert.equal(rec.messages[2]!.body, 'fresh');
    assert.deepEqual(c.position, { epoch: 'e2', lastSeq: 1 });
  });

  it('acks only when told to in manual mode', async () => {
    const c = client({ ack: 'manual' });
    const rec = record(c);
    const conn = await server.connection(1);
    await conn.next('hello');
    conn.welcome();
    for (const s of [1, 2, 3]) conn.send(message(s));
    await waitFor(() => rec.messages.length === 3, 'three messages');
    assert.throws(() => c.ack(4), { code: 'BAD_REQUEST', field: 'seq' });
    c.ack(2);
    assert.equal((await conn.next('ack')).upTo, 2);
    assert.equal(conn.frames.filter((f) => f.type === 'ack').length, 1);
  });

  it('resolves send on accepted, rejects on an error frame, and resends unanswered sends after a reconnect', async () => {
    const c = client();
    const first = await server.connection(1);
    await first.next('hello');
    const early = c.send({ to: 'alice', body: 'before welcome', id: 'm1' });
    first.welcome();
    assert.equal((await first.next('send')).id, 'm1', 'queued until welcomed');
    first.send({ type: 'accepted', id: 'm1', seq: 7, duplicate: false, durable: true });
    assert.deepEqual(await early, { id: 'm1', seq: 7, duplicate: false });

    const refused = c.send({ to: 'alice', body: 'x', id: 'm2' });
    await first.next('send', 2);
    first.send({ type: 'error', id: 'm2', code: 'MAILBOX_FULL', message: 'full' });
    await assert.rejects(refused, { name: 'PoboxError', code: 'MAILBOX_FULL' });

    const lost = c.send({ to: 'alice', body: 'y', id: 'm3' });
    await first.next('send', 3);
    first.socket.terminate();
    const second = await server.connection(2);
    await second.next('hello');
    second.welcome();
    const resent = await second.next('send');
    assert.equal(resent.id, 'm3');
    assert.equal(resent.body, 'y');
    second.send({ type: 'accepted', id: 'm3', seq: 9, duplicate: true, durable: true });
    assert.deepEqual(await lost, { id: 'm3', seq: 9, duplicate: true });
  });

  it('stops for good on UNAUTHORIZED and rejects unfinished sends', async () => {
    const c = client();
    const rec = record(c);
    const conn = await server.connection(1);
    await conn.next('hello');
    const pending = c.send({ to: 'alice', body: 'x' });
    conn.socket.close(4001, 'expired');
    await assert.rejects(pending, { code: 'UNAUTHORIZED' });
    assert.equal(c.state, 'closed');
    assert.ok(rec.errors[0] instanceof ConnectionClosedError);
    assert.equal((rec.errors[0] as ConnectionClosedError).closeCode, 4001);
    assert.equal(server.connections.length, 1);
    assert.equal(
      rec.states.some((s) => s.state === 'reconnecting'),
      false,
    );
  });

  it('fails the largest send after a frame-too-big close, and resends the others', async () => {
    const c = client();
    const first = await server.connection(1);
    await first.next('hello');
    first.welcome();
    const small = c.send({ to: 'alice', body: 'small', id: 's' });
    const big = c.send({ to: 'alice', body: 'x'.repeat(5000), id: 'b' });
    await first.next('send', 2);
    first.socket.close(1009, 'too big');
    await assert.rejects(big, { code: 'PAYLOAD_TOO_LARGE' });
    const second = await server.connection(2);
    await second.next('hello');
    second.welcome();
    assert.equal((await second.next('send')).id, 's');
    second.send({ type: 'accepted', id: 's', seq: 1, duplicate: false, durable: true });
    await small;
    assert.equal(second.frames.filter((f) => f.type === 'send').length, 1);
  });

  it('asks a token function for a fresh token on every attempt', async () => {
    let minted = 0;
    const c = connect(server.url, () => Promise.resolve(`tok${++minted}`), { WebSocket, backoffBaseMs: 10 });
    clients.push(c);
    const first = await server.connection(1);
    assert.match(first.url, /token=tok1\b/);
    first.socket.terminate();
    const second = await server.connection(2);
    assert.match(second.url, /token=tok2\b/);
  });

  it('moves on to the next URL when the first one does not answer', async () => {
    const dead = await ScriptedServer.start();
    const deadUrl = dead.url;
    await dead.close();
    const c = connect([deadUrl, server.url], 'tok', { WebSocket, backoffBaseMs: 10 });
    clients.push(c);
    const rec = record(c);
    const conn = await server.connection(1);
    await conn.next('hello');
    conn.welcome();
    await c.ready();
    assert.equal(c.url, server.url);
    assert.equal(rec.states[0]?.url, deadUrl, 'it tried the first URL first');
  });

  it('leaves no timers behind after close()', async () => {
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    // Sockets of earlier tests may still be finishing their closing handshake (ws keeps a timer for that).
    await waitFor(() => timers() === 0, 'earlier timers to finish');
    const before = 0;
    const c = client({ pingIntervalMs: 1000, sendTimeoutMs: 60_000 });
    const conn = await server.connection(1);
    await conn.next('hello');
    conn.welcome();
    await c.ready();
    const pending = c.send({ to: 'alice', body: 'never answered' });
    conn.send(message(1));
    await waitFor(() => c.stats.delivered === 1, 'a message handed over');
    assert.ok(timers() > before, 'ping, connect and send timers were running');
    c.close();
    await assert.rejects(pending, { code: 'UNAVAILABLE' });
    await waitFor(() => conn.socket.readyState === conn.socket.CLOSED, 'the socket closed');
    await waitFor(() => timers() === before, 'every timer cleared');
    assert.equal(c.state, 'closed');
  });

  it('drops a connection that is never welcomed, and one that goes silent', async () => {
    const c = client({ connectTimeoutMs: 100, pingIntervalMs: 50 });
    const rec = record(c);
    const first = await server.connection(1);
    await first.next('hello'); // and then nothing
    const second = await server.connection(2);
    await second.next('hello');
    second.welcome();
    await second.next('ping');
    // No pongs and no frames: after two intervals the client gives up and connects again.
    await server.connection(3);
    assert.ok(rec.states.filter((s) => s.state === 'reconnecting').length >= 2);
  });
});
