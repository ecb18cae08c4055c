/** Conformance: expiry with a fake clock, the sweeper, and mailbox quotas. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type EngineFactory, idsOf, readAll, rejectsWith, withEnv } from './helpers.js';

const T = { timeout: 60_000 };

export function defineExpiryQuotaBehaviours(factory: EngineFactory): void {
  describe('expiry', () => {
    it('never delivers a message once it has expired, even before a sweep', T, async () => {
      await withEnv(factory, {}, async ({ po, clock }) => {
        await po.registerDevice('bob', 'phone');
        await po.send({ to: 'bob', from: 'a', id: 'short', body: 's', ttlSeconds: 60 });
        await po.send({ to: 'bob', from: 'a', id: 'long', body: 'l', ttlSeconds: 3600 });
        clock.advance(59_999);
        assert.deepEqual(idsOf(await readAll(po, 'bob', 'phone')), ['short', 'long']);
        clock.advance(1); // now == expiresAt of 'short'
        assert.deepEqual(idsOf(await readAll(po, 'bob', 'phone')), ['long']);
        clock.advance(3600_000);
        const page = await po.read('bob', 'phone', 0, 10);
        assert.deepEqual(page.messages, []);
      });
    });

    it('the sweeper deletes expired messages and reports them', T, async () => {
      await withEnv(factory, {}, async ({ po, clock }) => {
        await po.registerDevice('bob', 'phone');
        for (let i = 0; i < 5; i++) await po.send({ to: 'bob', from: 'a', id: `e${i}`, body: 'xx', ttlSeconds: 60 });
        await po.send({ to: 'bob', from: 'a', id: 'keep', body: 'yyy', ttlSeconds: 600 });
        let announced = 0;
        po.events.on('expired', (e) => (announced += e.count));
        assert.equal(await po.sweepNow(), 0, 'nothing has expired yet');
        clock.advance(61_000);
        assert.equal(await po.sweepNow(), 5);
        assert.equal(announced, 5);
        const stats = await po.stats('bob');
        assert.deepEqual([stats.pending, stats.pendingBytes], [1, 3]);
        assert.equal(await po.sweepNow(), 0, 'a second sweep finds nothing');
      });
    });

    it('sweeps in batches until done across many users', T, async () => {
      await withEnv(factory, { retention: { sweepBatch: 7 } }, async ({ po, clock }) => {
        await Promise.all(
          Array.from({ length: 10 }, (_, u) => Promise.all(Array.from({ length: 5 }, (_, i) => po.send({ to: `u${u}`, from: 'a', id: `m${i}`, body: 'x', ttlSeconds: 10 })))),
        );
        clock.advance(10_000);
        assert.equal(await po.sweepNow(), 50);
        for (let u = 0; u < 10; u++) assert.equal((await po.stats(`u${u}`)).pending, 0);
      });
    });

    it('keeps the dedupe entry for the retention window, then lets the id be used again', T, async () => {
      await withEnv(factory, {}, async ({ po, clock }) => {
        await po.registerDevice('bob', 'phone');
        const first = await po.send({ to: 'bob', from: 'a', id: 'reuse', body: 'first', ttlSeconds: 60 });
        await po.ack('bob', 'phone', first.seq); // deleted now, but still remembered
        clock.advance(59_000);
        assert.deepEqual(await po.send({ to: 'bob', from: 'a', id: 'reuse', body: 'again', ttlSeconds: 60 }).then((r) => [r.seq, r.duplicate]), [first.seq, true]);
        clock.advance(1_000);
        await po.sweepNow();
        const second = await po.send({ to: 'bob', from: 'a', id: 'reuse', body: 'second', ttlSeconds: 60 });
        assert.equal(second.duplicate, false);
        assert.ok(second.seq > first.seq);
        assert.deepEqual(
          (await readAll(po, 'bob', 'phone')).map((m) => m.body),
          ['second'],
        );
        const third = await po.send({ to: 'bob', from: 'a', id: 'reuse', body: 'third', ttlSeconds: 60 });
        assert.deepEqual([third.seq, third.duplicate], [second.seq, true], 'the new entry dedupes again');
      });
    });

    it('a sweep of an old expiry entry never drops the dedupe entry of a newer message with the same id', T, async () => {
      await withEnv(factory, {}, async ({ po, clock }) => {
        const first = await po.send({ to: 'bob', from: 'a', id: 'x', body: 'old', ttlSeconds: 60 });
        clock.advance(60_000); // expired, not swept yet
        const second = await po.send({ to: 'bob', from: 'a', id: 'x', body: 'new', ttlSeconds: 600 });
        assert.equal(second.duplicate, false);
        assert.equal(second.seq, first.seq + 1);
        assert.equal(await po.sweepNow(), 1);
        const resend = await po.send({ to: 'bob', from: 'a', id: 'x', body: 'new', ttlSeconds: 600 });
        assert.deepEqual([resend.seq, resend.duplicate], [second.seq, true]);
        assert.equal((await po.stats('bob')).pending, 1);
      });
    });
  });

  // One sender fills the whole mailbox here: its share (fair-quotas.ts) is turned off.
  describe('quotas', () => {
    it('refuses a message over the count quota with MAILBOX_FULL and stores nothing', T, async () => {
      await withEnv(factory, { limits: { maxMailboxMessages: 3, senderShare: 1 } }, async ({ po, store }) => {
        await po.registerDevice('bob', 'phone');
        for (let i = 0; i < 3; i++) await po.send({ to: 'bob', from: 'a', id: `q${i}`, body: 'x' });
        const written = store.counters().keysWritten;
        const err = await rejectsWith(po.send({ to: 'bob', from: 'a', id: 'q3', body: 'x' }), 'MAILBOX_FULL');
        assert.equal(err.retryable, true);
        assert.equal(store.counters().keysWritten, written, 'nothing was written');
        const stats = await po.stats('bob');
        assert.deepEqual([stats.pending, stats.lastSeq], [3, 3]);
        // Other users are unaffected.
        assert.equal((await po.send({ to: 'carol', from: 'a', id: 'q3', body: 'x' })).seq, 1);
        // Space freed by an ack is usable again; the refused id was never remembered.
        await po.ack('bob', 'phone', 1);
        const r = await po.send({ to: 'bob', from: 'a', id: 'q3', body: 'x' });
        assert.deepEqual([r.seq, r.duplicate], [4, false]);
      });
    });

    it('refuses a message over the byte quota with MAILBOX_FULL and stores nothing', T, async () => {
      await withEnv(factory, { limits: { maxMailboxBytes: 100, senderShare: 1 } }, async ({ po }) => {
        await po.send({ to: 'bob', from: 'a', id: 'b1', body: 'x'.repeat(60) });
        await rejectsWith(po.send({ to: 'bob', from: 'a', id: 'b2', body: 'y'.repeat(41) }), 'MAILBOX_FULL');
        const fits = await po.send({ to: 'bob', from: 'a', id: 'b3', body: 'z'.repeat(40) });
        assert.equal(fits.seq, 2);
        const stats = await po.stats('bob');
        assert.deepEqual([stats.pending, stats.pendingBytes], [2, 100]);
        // A first message bigger than the whole quota does not even create a mailbox.
        await rejectsWith(po.send({ to: 'dave', from: 'a', id: 'big', body: 'w'.repeat(101) }), 'MAILBOX_FULL');
        assert.ok(!(await po.store.users()).includes('dave'));
      });
    });

    it('accepts exactly up to the quota when many sends race in one batch', T, async () => {
      await withEnv(factory, { limits: { maxMailboxMessages: 10, senderShare: 1 } }, async ({ po }) => {
        const results = await Promise.allSettled(Array.from({ length: 25 }, (_, i) => po.send({ to: 'bob', from: 'a', id: `r${i}`, body: 'x' })));
        const ok = results.filter((r) => r.status === 'fulfilled');
        const full = results.filter((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'MAILBOX_FULL');
        assert.equal(ok.length, 10);
        assert.equal(full.length, 15);
        assert.equal((await po.stats('bob')).pending, 10);
      });
    });
  });
}
