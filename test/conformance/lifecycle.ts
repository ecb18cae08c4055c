/** Conformance: stats, purge, epoch, events, reopen and close. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type EngineFactory, idsOf, readAll, rejectsWith, seqsOf, sendMany, withEnv } from './helpers.js';

const T = { timeout: 60_000 };

export function defineLifecycleBehaviours(factory: EngineFactory): void {
  describe('stats, purge, epoch, events', () => {
    it('reports pending count, bytes, oldest age and devices', T, async () => {
      await withEnv(factory, {}, async ({ po, clock }) => {
        const empty = await po.stats('nobody');
        assert.deepEqual([empty.pending, empty.pendingBytes, empty.oldestAgeMs, empty.devices, empty.lastSeq], [0, 0, null, [], 0]);
        await po.registerDevice('bob', 'phone');
        clock.advance(1000);
        await po.registerDevice('bob', 'laptop');
        await po.send({ to: 'bob', from: 'a', id: '1', body: 'abc' });
        clock.advance(5000);
        await po.send({ to: 'bob', from: 'a', id: '2', body: 'ünï' }); // 5 bytes
        clock.advance(2000);
        const s = await po.stats('bob');
        assert.equal(s.user, 'bob');
        assert.deepEqual([s.pending, s.pendingBytes, s.oldestAgeMs, s.lastSeq], [2, 8, 7000, 2]);
        assert.deepEqual(
          s.devices.map((d) => [d.device, d.cursor]),
          [
            ['laptop', 0],
            ['phone', 0],
          ],
        );
        assert.equal(s.devices[0]!.registeredAt - s.devices[1]!.registeredAt, 1000);
        await po.ack('bob', 'phone', 1);
        await po.ack('bob', 'laptop', 1);
        const after = await po.stats('bob');
        assert.deepEqual([after.pending, after.pendingBytes, after.oldestAgeMs], [1, 5, 2000]);
      });
    });

    it('purge deletes every message but keeps devices, seqs and dedupe', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await po.registerDevice('bob', 'phone');
        await sendMany(po, 'bob', 7);
        await po.send({ to: 'carol', from: 'a', id: 'c', body: 'x' });
        const r = await po.purge('bob');
        assert.equal(r.deleted, 7);
        const s = await po.stats('bob');
        assert.deepEqual([s.pending, s.pendingBytes, s.lastSeq, s.devices.length], [0, 0, 7, 1]);
        assert.deepEqual(await readAll(po, 'bob', 'phone'), []);
        assert.equal((await po.stats('carol')).pending, 1, 'other users untouched');
        assert.deepEqual(await po.send({ to: 'bob', from: 'sender', id: 'm0', body: 'again' }).then((x) => [x.seq, x.duplicate]), [1, true]);
        assert.equal((await po.send({ to: 'bob', from: 'a', id: 'fresh', body: 'x' })).seq, 8);
        assert.deepEqual((await po.purge('nobody')).deleted, 0);
      });
    });

    it('keeps one epoch for a mailbox through sends, acks, purges and device changes', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        const first = await po.send({ to: 'bob', from: 'a', id: '1', body: 'x' });
        await po.registerDevice('bob', 'phone');
        await po.ack('bob', 'phone', 1);
        await po.purge('bob');
        await po.registerDevice('bob', 'laptop');
        await po.removeDevice('bob', 'phone');
        const second = await po.send({ to: 'bob', from: 'a', id: '2', body: 'x' });
        const page = await po.read('bob', 'laptop', 0, 10);
        const stats = await po.stats('bob');
        assert.deepEqual([second.epoch, page.epoch, stats.epoch], [first.epoch, first.epoch, first.epoch]);
        const other = await po.send({ to: 'carol', from: 'a', id: '1', body: 'x' });
        assert.notEqual(other.epoch, first.epoch, 'each mailbox gets its own epoch');
      });
    });

    it('announces stored messages once (not duplicates) and cursor moves', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        const stored: Array<[string, number, string]> = [];
        const acked: Array<[string, number, number]> = [];
        po.events.on('stored', (e) => stored.push([e.user, e.message.seq, e.message.id]));
        po.events.on('acked', (e) => acked.push([e.device, e.cursor, e.deleted]));
        await po.registerDevice('bob', 'phone');
        await po.send({ to: 'bob', from: 'a', id: 'x', body: '1' });
        await po.send({ to: 'bob', from: 'a', id: 'x', body: '1' });
        await po.send({ to: 'bob', from: 'a', id: 'y', body: '2' });
        await po.ack('bob', 'phone', 2);
        await po.ack('bob', 'phone', 1); // no move, no event
        assert.deepEqual(stored, [
          ['bob', 1, 'x'],
          ['bob', 2, 'y'],
        ]);
        assert.deepEqual(acked, [['phone', 2, 2]]);
      });
    });

    it('lists users with a mailbox in key order, page by page', T, async () => {
      await withEnv(factory, {}, async ({ po, store }) => {
        for (const u of ['carol', 'alice', 'dave', 'bob']) await po.send({ to: u, from: 'x', id: '1', body: 'x' });
        assert.deepEqual(await store.users(), ['alice', 'bob', 'carol', 'dave']);
        assert.deepEqual(await store.users({ limit: 2 }), ['alice', 'bob']);
        assert.deepEqual(await store.users({ after: 'bob', limit: 10 }), ['carol', 'dave']);
      });
    });
  });

  describe('reopen and close', () => {
    it('reopening keeps messages, cursors, dedupe, seqs and the epoch', T, async () => {
      await withEnv(factory, {}, async (env) => {
        let po = env.po;
        await po.registerDevice('bob', 'phone');
        await po.registerDevice('bob', 'laptop');
        const sent = await sendMany(po, 'bob', 6);
        await po.send({ to: 'bob', toDevice: 'laptop', from: 'a', id: 'lap', body: 'only laptop' });
        await po.ack('bob', 'phone', 4);
        await po.ack('bob', 'laptop', 2);
        const before = await po.stats('bob');
        const phoneBefore = await readAll(po, 'bob', 'phone');
        const laptopBefore = await readAll(po, 'bob', 'laptop');

        po = await env.reopen();
        const after = await po.stats('bob');
        assert.deepEqual({ ...after, oldestAgeMs: null }, { ...before, oldestAgeMs: null });
        assert.deepEqual(await readAll(po, 'bob', 'phone'), phoneBefore);
        assert.deepEqual(await readAll(po, 'bob', 'laptop'), laptopBefore);
        assert.deepEqual(idsOf(laptopBefore), ['m2', 'm3', 'm4', 'm5', 'lap']);
        const dup = await po.send({ to: 'bob', from: 'sender', id: 'm0', body: 'again' });
        assert.deepEqual([dup.seq, dup.duplicate, dup.epoch], [sent[0], true, before.epoch]);
        const next = await po.send({ to: 'bob', from: 'a', id: 'after-reopen', body: 'x' });
        assert.deepEqual([next.seq, next.epoch], [8, before.epoch]);
        assert.equal((await po.ack('bob', 'laptop', 8)).deleted, 3, 'seqs 3-4 (phone acked) and the laptop-only message');
        assert.deepEqual(seqsOf(await readAll(po, 'bob', 'phone')), [5, 6, 8]);
      });
    });

    it('after close, every call fails with UNAVAILABLE and nothing is stored', T, async () => {
      await withEnv(factory, {}, async (env) => {
        await env.po.registerDevice('bob', 'phone');
        const inFlight = env.po.send({ to: 'bob', from: 'a', id: 'before-close', body: 'x' });
        await env.po.close();
        assert.equal((await inFlight).seq, 1, 'a send accepted before close still completes');
        await rejectsWith(env.po.send({ to: 'bob', from: 'a', id: 'late', body: 'x' }), 'UNAVAILABLE');
        await rejectsWith(() => env.po.read('bob', 'phone', 0, 10), 'UNAVAILABLE');
        await rejectsWith(() => env.po.ack('bob', 'phone', 1), 'UNAVAILABLE');
        await rejectsWith(() => env.po.stats('bob'), 'UNAVAILABLE');
        const po = await env.reopen();
        assert.deepEqual(idsOf(await readAll(po, 'bob', 'phone')), ['before-close']);
      });
    });
  });
}
