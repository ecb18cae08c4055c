/** Conformance: devices, cursors, acks, and which deletes they allow. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type EngineFactory, idsOf, readAll, rejectsWith, seqsOf, sendMany, withEnv } from './helpers.js';

const T = { timeout: 60_000 };

export function defineDeviceBehaviours(factory: EngineFactory): void {
  describe('devices and cursors', () => {
    it('the first device gets everything kept for a user who had none', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await sendMany(po, 'bob', 5);
        assert.equal((await po.stats('bob')).pending, 5, 'a user with no device keeps everything');
        const r = await po.registerDevice('bob', 'phone');
        assert.deepEqual([r.created, r.cursor], [true, 0]);
        assert.deepEqual(seqsOf(await readAll(po, 'bob', 'phone')), [1, 2, 3, 4, 5]);
      });
    });

    it('readIfRegistered answers undefined for an unknown device or user, a page like read for a known one', T, async () => {
      await withEnv(factory, {}, async ({ po, store, clock }) => {
        const req = (user: string, device: string) => ({ user, device, afterSeq: 0, limit: 10, now: clock.now() });
        assert.equal(await store.readIfRegistered(req('nobody', 'phone')), undefined);
        await sendMany(po, 'bob', 3);
        assert.equal(await store.readIfRegistered(req('bob', 'phone')), undefined, 'a mailbox with messages but no device');
        await po.registerDevice('bob', 'phone');
        assert.equal(await store.readIfRegistered(req('bob', 'tablet')), undefined, 'another device of a known user');
        const page = await store.readIfRegistered(req('bob', 'phone'));
        assert.deepEqual(page, await store.read(req('bob', 'phone')));
        assert.deepEqual(seqsOf(page!.messages), [1, 2, 3]);
      });
    });

    it('readOrRegister registers a first-time device as registerDevice would, then reads; a known one is only read', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await sendMany(po, 'bob', 3);
        const first = await po.readOrRegister('bob', 'phone', 0, 10);
        assert.deepEqual([first.cursor, seqsOf(first.messages)], [0, [1, 2, 3]], "a user's first device starts from the oldest");
        const later = await po.readOrRegister('bob', 'laptop', 0, 10);
        assert.deepEqual([later.cursor, later.messages.length, later.lastSeq], [3, 0, 3], 'a later device starts at the head');
        await po.ack('bob', 'phone', 2);
        const again = await po.readOrRegister('bob', 'phone', 0, 10);
        assert.deepEqual([again.cursor, seqsOf(again.messages)], [2, [3]]);
        assert.deepEqual(
          (await po.stats('bob')).devices.map((d) => [d.device, d.cursor]),
          [
            ['laptop', 3],
            ['phone', 2],
          ],
        );
        await rejectsWith(po.readOrRegister('bob', 'bad device id!', 0, 10), 'BAD_REQUEST');
      });
    });

    it("a page carries the device's cursor as it was when read, empty or not", T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await po.registerDevice('bob', 'phone');
        await sendMany(po, 'bob', 3);
        assert.equal((await po.read('bob', 'phone', 0, 10)).cursor, 0);
        await po.ack('bob', 'phone', 2);
        const page = await po.read('bob', 'phone', 0, 10);
        assert.deepEqual([page.cursor, seqsOf(page.messages)], [2, [3]]);
        await po.ack('bob', 'phone', 3);
        const empty = await po.read('bob', 'phone', 0, 10);
        assert.deepEqual([empty.cursor, empty.messages.length, empty.lastSeq], [3, 0, 3]);
      });
    });

    it('a device added later starts at the head', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await po.registerDevice('bob', 'phone');
        await sendMany(po, 'bob', 4, 'old');
        const r = await po.registerDevice('bob', 'laptop');
        assert.equal(r.cursor, 4);
        assert.deepEqual(await readAll(po, 'bob', 'laptop'), []);
        await po.send({ to: 'bob', from: 'alice', id: 'new', body: 'new' });
        assert.deepEqual(idsOf(await readAll(po, 'bob', 'laptop')), ['new']);
        assert.equal((await readAll(po, 'bob', 'phone')).length, 5, 'the older device still sees everything');
      });
    });

    it("start: 'oldest' makes a later device read everything still kept", T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await po.registerDevice('bob', 'phone');
        await sendMany(po, 'bob', 6);
        await po.ack('bob', 'phone', 2); // 1..2 acked by every device: deleted
        const r = await po.registerDevice('bob', 'tablet', 'oldest');
        assert.equal(r.cursor, 0);
        assert.deepEqual(seqsOf(await readAll(po, 'bob', 'tablet')), [3, 4, 5, 6]);
        const head = await po.registerDevice('bob', 'watch', 'head');
        assert.equal(head.cursor, 6);
      });
    });

    it('a first device that starts at the head leaves nothing undeletable behind', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await sendMany(po, 'bob', 3);
        const acked: number[] = [];
        po.events.on('acked', (e) => acked.push(e.deleted));
        const r = await po.registerDevice('bob', 'phone', 'head');
        assert.deepEqual([r.created, r.cursor], [true, 3]);
        assert.deepEqual(acked, [3], 'announced like an ack, for gauges that count pending messages');
        const stats = await po.stats('bob');
        assert.deepEqual([stats.pending, stats.pendingBytes, stats.oldestAgeMs], [0, 0, null]);
        await po.send({ to: 'bob', from: 'a', id: 'new', body: 'x' });
        assert.deepEqual(idsOf(await readAll(po, 'bob', 'phone')), ['new']);
      });
    });

    it('registering a device again keeps its cursor', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await po.registerDevice('bob', 'phone');
        await sendMany(po, 'bob', 3);
        await po.ack('bob', 'phone', 2);
        const again = await po.registerDevice('bob', 'phone', 'oldest');
        assert.deepEqual([again.created, again.cursor], [false, 2]);
        assert.deepEqual(await po.listDevices('bob'), [{ device: 'phone', cursor: 2, registeredAt: again.registeredAt }]);
      });
    });

    it('keeps a cursor per device and deletes only on the last device’s ack', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await po.registerDevice('bob', 'phone');
        await po.registerDevice('bob', 'laptop');
        await sendMany(po, 'bob', 10);
        const a = await po.ack('bob', 'phone', 6);
        assert.deepEqual(a, { cursor: 6, deleted: 0 });
        assert.equal((await po.stats('bob')).pending, 10, 'laptop has not acked: nothing deleted');
        assert.deepEqual(seqsOf(await readAll(po, 'bob', 'phone')), [7, 8, 9, 10]);
        assert.equal((await readAll(po, 'bob', 'laptop')).length, 10);
        const b = await po.ack('bob', 'laptop', 4);
        assert.deepEqual(b, { cursor: 4, deleted: 4 });
        assert.equal((await po.stats('bob')).pending, 6);
        const c = await po.ack('bob', 'laptop', 10);
        assert.deepEqual(c, { cursor: 10, deleted: 2 }, 'only up to the lowest cursor (phone at 6)');
        const d = await po.ack('bob', 'phone', 10);
        assert.deepEqual(d, { cursor: 10, deleted: 4 });
        const stats = await po.stats('bob');
        assert.deepEqual([stats.pending, stats.pendingBytes], [0, 0]);
        assert.deepEqual(
          stats.devices.map((x) => [x.device, x.cursor]),
          [
            ['laptop', 10],
            ['phone', 10],
          ],
        );
      });
    });

    it('an ack is idempotent and never moves a cursor backwards', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await po.registerDevice('bob', 'phone');
        await sendMany(po, 'bob', 8);
        assert.deepEqual(await po.ack('bob', 'phone', 5), { cursor: 5, deleted: 5 });
        assert.deepEqual(await po.ack('bob', 'phone', 5), { cursor: 5, deleted: 0 });
        assert.deepEqual(await po.ack('bob', 'phone', 2), { cursor: 5, deleted: 0 });
        assert.deepEqual(await po.ack('bob', 'phone', 0), { cursor: 5, deleted: 0 });
        assert.equal((await po.listDevices('bob'))[0]?.cursor, 5);
        assert.equal((await po.stats('bob')).pending, 3);
      });
    });

    it('a read never returns what the device acked, whatever afterSeq it asks for', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await po.registerDevice('bob', 'phone');
        await po.registerDevice('bob', 'laptop');
        await sendMany(po, 'bob', 5);
        await po.ack('bob', 'phone', 3);
        assert.deepEqual(seqsOf((await po.read('bob', 'phone', 0, 10)).messages), [4, 5]);
        assert.deepEqual(seqsOf((await po.read('bob', 'phone', 4, 10)).messages), [5]);
        assert.deepEqual(seqsOf((await po.read('bob', 'laptop', 1, 10)).messages), [2, 3, 4, 5]);
      });
    });

    it('shows a toDevice message only to that device and deletes it on that device’s ack', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await po.registerDevice('bob', 'phone');
        await po.registerDevice('bob', 'laptop');
        await po.send({ to: 'bob', from: 'a', id: 'all-1', body: 'for all' });
        await po.send({ to: 'bob', toDevice: 'laptop', from: 'a', id: 'lap', body: 'for the laptop' });
        await po.send({ to: 'bob', from: 'a', id: 'all-2', body: 'for all' });
        assert.deepEqual(idsOf(await readAll(po, 'bob', 'phone')), ['all-1', 'all-2']);
        const phonePage = await po.read('bob', 'phone', 1, 1);
        assert.deepEqual([idsOf(phonePage.messages), phonePage.nextAfter], [['all-2'], 3], 'nextAfter covers the skipped message');
        assert.deepEqual(idsOf(await readAll(po, 'bob', 'laptop')), ['all-1', 'lap', 'all-2']);
        // The laptop acks everything; the phone has acked nothing. Only the laptop's own message can go.
        const r = await po.ack('bob', 'laptop', 3);
        assert.equal(r.deleted, 1);
        assert.equal((await po.stats('bob')).pending, 2);
        assert.deepEqual(idsOf(await readAll(po, 'bob', 'phone')), ['all-1', 'all-2']);
        assert.equal((await po.ack('bob', 'phone', 3)).deleted, 2);
        assert.equal((await po.stats('bob')).pending, 0);
      });
    });

    it('removing a device drops its cursor and deletes what it alone held back', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await po.registerDevice('bob', 'phone');
        await po.registerDevice('bob', 'old-tablet');
        await sendMany(po, 'bob', 6);
        await po.send({ to: 'bob', toDevice: 'old-tablet', from: 'a', id: 'for-tablet', body: 't' });
        await po.ack('bob', 'phone', 6);
        assert.equal((await po.stats('bob')).pending, 7, 'the tablet holds everything back');
        assert.equal(await po.removeDevice('bob', 'old-tablet'), true);
        const stats = await po.stats('bob');
        assert.equal(stats.pending, 0, 'acked by the phone, and the tablet’s own message went with it');
        assert.deepEqual(
          stats.devices.map((d) => d.device),
          ['phone'],
        );
        await rejectsWith(po.read('bob', 'old-tablet', 0, 10), 'NOT_FOUND');
        await rejectsWith(po.ack('bob', 'old-tablet', 1), 'NOT_FOUND');
        assert.equal(await po.removeDevice('bob', 'old-tablet'), false, 'removing twice is a no-op');
      });
    });

    it('removing the last device keeps the mailbox for the next first device', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await po.registerDevice('bob', 'phone');
        await sendMany(po, 'bob', 4);
        await po.ack('bob', 'phone', 1);
        await po.removeDevice('bob', 'phone');
        assert.equal((await po.stats('bob')).pending, 3);
        await po.send({ to: 'bob', from: 'a', id: 'later', body: 'x' });
        await po.registerDevice('bob', 'new-phone');
        assert.deepEqual(seqsOf(await readAll(po, 'bob', 'new-phone')), [2, 3, 4, 5]);
      });
    });

    it('refuses more devices than the limit with FORBIDDEN', T, async () => {
      await withEnv(factory, { limits: { maxDevicesPerUser: 2 } }, async ({ po }) => {
        await po.registerDevice('bob', 'd1');
        await po.registerDevice('bob', 'd2');
        await rejectsWith(po.registerDevice('bob', 'd3'), 'FORBIDDEN');
        assert.equal((await po.listDevices('bob')).length, 2);
        assert.equal((await po.registerDevice('bob', 'd2')).created, false, 'an existing device may register again');
      });
    });
  });
}
