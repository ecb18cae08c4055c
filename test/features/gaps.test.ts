/**
 * Gap notices over real sockets, on both engines: messages a device had not acked that
 * expired (swept, or not yet) are reported once, in order with the messages (a `gap`
 * frame before the next message, `caughtUp.gap` after the backlog's last one); the SDK
 * emits one `gap` event per notice, acks past it, and never emits it again on a
 * reconnect; an admin's skip is reported the same way; HTTP pulls carry the same fields. Time
 * comes from a FakeClock the post office reads; the sweeper runs when the test says so.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { connect, type GapEvent } from '../../src/client/index.js';
import { PostOffice } from '../../src/postoffice/post-office.js';
import type { MailboxStore } from '../../src/store/contract.js';
import { openDynamoDbStore } from '../../src/store/dynamodb/index.js';
import { openLmdbStore } from '../../src/store/lmdb/index.js';
import { startDynamoDbLocal, type DynamoDbLocal } from '../../tools/dynamodb-local.js';
import { FakeClock } from '../../tools/fake-clock.js';
import { tempDir, type TempDir } from '../support/temp-dir.js';
import { Device, RawDevice, waitFor } from '../multinode/devices.js';
import { ADMIN_KEY, api, startTestServer, type TestServer } from '../gateway/helpers.js';

type Engine = 'lmdb' | 'dynamodb';

for (const engine of ['lmdb', 'dynamodb'] as Engine[]) {
  describe(`gap notices over sockets (${engine})`, () => {
    let ddb: DynamoDbLocal | undefined;
    let dir: TempDir | undefined;
    let store: MailboxStore;
    let po: PostOffice;
    let server: TestServer;
    const clock = new FakeClock(Date.now());
    const serverGaps: Array<{ user: string; device: string } & GapEvent> = [];

    before(async () => {
      if (engine === 'dynamodb') {
        ddb = await startDynamoDbLocal();
        const table = await ddb.newTable({ ttl: false });
        store = await openDynamoDbStore({ engine: 'dynamodb', table, endpoint: ddb.endpoint, sweepShards: 2 });
      } else {
        dir = tempDir('pobox-gaps-');
        store = await openLmdbStore({ path: dir.path });
      }
      // A window of one message, so a live session can be held behind an unacked one.
      po = new PostOffice({ store, clock, sweeper: false });
      server = await startTestServer({ session: { windowMessages: 1 } }, { postOffice: po });
      server.events.on('gap', (g) => serverGaps.push(g));
    });
    after(async () => {
      await server?.stop();
      await po?.close();
      await ddb?.stop();
      await dir?.remove();
    });

    const send = (to: string, id: string, ttlSeconds: number): Promise<unknown> => po.send({ to, from: 'alice', id, body: id, ttlSeconds });

    it('a drain reports what expired unseen (swept or not) once, in order with the messages; after the ack nothing is reported', async () => {
      await po.registerDevice('bob', 'phone');
      await send('bob', 'b1', 3600);
      await send('bob', 'b2', 60);
      clock.advance(60_000);
      assert.equal(await po.sweepNow(), 1); // 2 swept: a stored notice
      await send('bob', 'b3', 60);
      await send('bob', 'b4', 3600);
      await send('bob', 'b5', 60);
      clock.advance(60_000); // 3 and 5 expired, not swept: the reads pass them

      const bob = new Device([server.wsUrl], await server.token('bob', 'phone'));
      const gaps: GapEvent[] = [];
      const order: string[] = [];
      bob.client.on('gap', (g) => {
        gaps.push(g);
        order.push(`gap ${g.to}`);
      });
      bob.client.on('message', (m) => void order.push(`message ${m.seq}`));
      bob.client.on('caughtUp', () => void order.push('caughtUp'));
      try {
        await bob.waitCaughtUp();
        assert.deepEqual(
          bob.messages.map((m) => m.seq),
          [1, 4],
        );
        // 2 (swept) and 3 (passed) merge into the notice written before 4; 5, after the
        // last message, comes in caughtUp.
        assert.deepEqual(gaps, [
          { from: 2, to: 3, count: 2, reasons: ['expired'] },
          { from: 5, to: 5, count: 1, reasons: ['expired'] },
        ]);
        assert.deepEqual(order, ['message 1', 'gap 3', 'message 4', 'gap 5', 'caughtUp']);
        const frames = serverGaps.filter((g) => g.user === 'bob').map((g) => [g.from, g.to]);
        assert.deepEqual(frames, [
          [2, 3],
          [5, 5],
        ]);
        await waitFor(() => bob.client.stats.serverCursor === 5, 'the SDK acked up to the last notice');
        const page = await po.read('bob', 'phone', 0, 10);
        assert.equal(page.gap, undefined, 'the ack cleared the notice');

        bob.cut();
        await bob.waitCaughtUp(2);
        assert.equal(gaps.length, 2, 'nothing reported after the ack');
        assert.equal(serverGaps.filter((g) => g.user === 'bob').length, 2, 'the second session sent no notice');
        assert.deepEqual(bob.errors, []);
      } finally {
        bob.close();
      }
    });

    it('a notice not yet acked comes again on the next session, but the SDK emits it once; ack(to) clears it', async () => {
      await po.registerDevice('carol', 'phone');
      await send('carol', 'c1', 60);
      await send('carol', 'c2', 60);
      clock.advance(60_000);
      await po.sweepNow();
      const gaps: GapEvent[] = [];
      let caughtUp = 0;
      const sockets: WebSocket[] = [];
      class Tracked extends WebSocket {
        constructor(url: string) {
          super(url);
          sockets.push(this);
        }
      }
      const carol = connect(server.wsUrl, await server.token('carol', 'phone'), { WebSocket: Tracked, ack: 'manual', backoffBaseMs: 50, backoffMaxMs: 200 });
      carol.on('gap', (g) => void gaps.push(g));
      carol.on('caughtUp', () => void caughtUp++);
      try {
        await waitFor(() => caughtUp === 1, 'first caughtUp');
        assert.deepEqual(gaps, [{ from: 1, to: 2, count: 2, reasons: ['expired'] }]);
        sockets.at(-1)!.terminate();
        await waitFor(() => caughtUp === 2, 'caughtUp after the reconnect');
        assert.equal(serverGaps.filter((g) => g.user === 'carol').length, 2, 'the server reported it on both sessions (never acked)');
        assert.equal(gaps.length, 1, 'the SDK emitted it once');
        carol.ack(2);
        await waitFor(() => carol.stats.serverCursor === 2, 'the ack of 2 committed');
        assert.equal((await po.read('carol', 'phone', 0, 10)).gap, undefined);
      } finally {
        carol.close();
      }
    });

    it('a message that expires while a live session is held behind the window comes as a gap frame, before the next message', async () => {
      const dave = new RawDevice();
      await dave.open(server.wsUrl, await server.token('dave', 'phone'));
      try {
        await dave.waitFrame((f) => f.type === 'caughtUp', 'dave caught up');
        assert.equal(dave.of('caughtUp')[0]!.gap, undefined, 'an empty mailbox has no gap');
        await send('dave', 'd1', 3600);
        await dave.waitFrame((f) => f.type === 'message' && f.seq === 1, 'message 1');
        await send('dave', 'd2', 60); // held: the window (1) is full until 1 is acked
        await send('dave', 'd3', 3600);
        clock.advance(60_000);
        dave.send({ type: 'ack', upTo: 1 });
        await dave.waitFrame((f) => f.type === 'message' && f.seq === 3, 'message 3');
        const delivered = dave.frames.filter((f) => f.type === 'message' || f.type === 'gap');
        assert.deepEqual(
          delivered.map((f) => (f.type === 'gap' ? `gap ${f.from}-${f.to} ${f.count} ${f.reasons.join()}` : `message ${f.seq}`)),
          ['message 1', 'gap 2-2 1 expired', 'message 3'],
        );
        // Acking 3 moves past it: the sweeper later has nothing to note for this device.
        dave.send({ type: 'ack', upTo: 3 });
        await dave.waitFrame((f) => f.type === 'acked' && f.cursor === 3, 'acked 3');
        await po.sweepNow();
        assert.equal((await po.read('dave', 'phone', 0, 10)).gap, undefined);
      } finally {
        await dave.cut();
      }
    });

    it("an admin's skip: the next session gets its notice with caughtUp, the SDK emits it once and acks its `to`, which clears it", async () => {
      await po.registerDevice('fay', 'phone');
      await send('fay', 'f1', 3600);
      await send('fay', 'f2', 3600);
      const r = await api(server, 'POST', '/v1/users/fay/devices/phone/skip', { token: ADMIN_KEY });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, { user: 'fay', device: 'phone', cursor: 2, deleted: 2 });

      const fay = new Device([server.wsUrl], await server.token('fay', 'phone'));
      const order: string[] = [];
      fay.client.on('gap', (g) => void order.push(`gap ${g.from}-${g.to} ${g.count} ${g.reasons.join()}`));
      fay.client.on('caughtUp', () => void order.push('caughtUp'));
      try {
        await fay.waitCaughtUp();
        assert.deepEqual(order, ['gap 1-2 2 purged', 'caughtUp']);
        assert.deepEqual(fay.messages, []);
        // The cursor was past the notice already: the SDK's ack of `to` removes it anyway.
        await waitFor(async () => (await po.read('fay', 'phone', 0, 10)).gap === undefined, 'the ack of 2 cleared the notice');
        fay.cut();
        await fay.waitCaughtUp(2);
        assert.deepEqual(order, ['gap 1-2 2 purged', 'caughtUp', 'caughtUp'], 'emitted once');
        assert.equal(serverGaps.filter((g) => g.user === 'fay').length, 1, 'the second session sent no notice');
        assert.deepEqual(fay.errors, []);
      } finally {
        fay.close();
      }
    });

    it('an HTTP pull carries the stored notice (`gap`) and the expired seqs it passed (`expired`)', async () => {
      await po.registerDevice('erin', 'web');
      await send('erin', 'e1', 60);
      await send('erin', 'e2', 3600);
      await send('erin', 'e3', 60);
      clock.advance(60_000);
      const token = await server.token('erin', 'web');
      let r = await api(server, 'GET', '/v1/messages?after=0', { token });
      assert.equal(r.status, 200);
      assert.deepEqual(
        r.body.messages.map((m: { seq: number }) => m.seq),
        [2],
      );
      assert.deepEqual(r.body.expired, [1, 3]);
      assert.equal(r.body.gap, undefined);
      await po.sweepNow();
      r = await api(server, 'GET', '/v1/messages?after=0', { token });
      assert.deepEqual(r.body.gap, { from: 1, to: 3, count: 2, reasons: ['expired'] });
      assert.equal(r.body.expired, undefined);
      assert.equal((await api(server, 'POST', '/v1/ack', { token, body: { upTo: 3 } })).status, 200);
      r = await api(server, 'GET', '/v1/messages?after=0', { token });
      assert.equal(r.body.gap, undefined);
    });
  });
}
