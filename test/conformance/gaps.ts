/**
 * Conformance: gap notices. A message a device had not acked that leaves the mailbox
 * without being shown to it (swept after it expired, purged) is noted beside the device's
 * cursor, read back on every page (`gap`) until an ack reaches the notice's `to`; an
 * expired message a read passes before the sweeper came is listed in the page (`expired`);
 * an admin's skip notes the messages for the device that it passes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ReadPage } from '../../src/core/types.js';
import { exportLines, importLines } from '../../src/postoffice/export.js';
import type { PostOffice } from '../../src/postoffice/post-office.js';
import { type EngineFactory, seqsOf, withEnv } from './helpers.js';

const T = { timeout: 60_000 };

/** Every page `device` reads from its cursor on, merged: messages, expired seqs, and the gap notice each page carried. */
async function view(po: PostOffice, user: string, device: string): Promise<{ seqs: number[]; expired: number[]; gaps: Array<ReadPage['gap']> }> {
  const out = { seqs: [] as number[], expired: [] as number[], gaps: [] as Array<ReadPage['gap']> };
  let after = 0;
  for (;;) {
    const page = await po.read(user, device, after, 2);
    out.seqs.push(...seqsOf(page.messages));
    out.expired.push(...(page.expired ?? []));
    out.gaps.push(page.gap);
    if (!page.more) return out;
    after = page.nextAfter;
  }
}

export function defineGapBehaviours(factory: EngineFactory): void {
  describe('gap notices', () => {
    it('a message that expired unseen gives exactly one notice with its range; an ack past it clears the notice', T, async () => {
      await withEnv(factory, {}, async (env) => {
        const { po, clock } = env;
        await po.registerDevice('bob', 'phone');
        await po.send({ to: 'bob', from: 'a', id: 'keep1', body: 'k1', ttlSeconds: 3600 });
        await po.send({ to: 'bob', from: 'a', id: 'short2', body: 's2', ttlSeconds: 60 });
        await po.send({ to: 'bob', from: 'a', id: 'short3', body: 's3', ttlSeconds: 60 });
        await po.send({ to: 'bob', from: 'a', id: 'keep4', body: 'k4', ttlSeconds: 3600 });
        clock.advance(60_000);

        // Before the sweeper: the read skips them and says so, page by page; nothing stored yet.
        let v = await view(po, 'bob', 'phone');
        assert.deepEqual(v.seqs, [1, 4]);
        assert.deepEqual(v.expired, [2, 3]);
        assert.ok(v.gaps.every((g) => g === undefined));

        assert.equal(await po.sweepNow(), 2);
        v = await view(po, 'bob', 'phone');
        assert.deepEqual(v.seqs, [1, 4]);
        assert.deepEqual(v.expired, [], 'swept: nothing left to pass');
        const notice = { from: 2, to: 3, count: 2, reasons: ['expired'] };
        for (const g of v.gaps) assert.deepEqual(g, notice, 'one notice, the same on every page');
        assert.equal(await po.sweepNow(), 0, 'a second sweep adds nothing');
        assert.deepEqual((await po.read('bob', 'phone', 0, 10)).gap, notice);

        // Durable: still there after a reopen.
        await env.reopen();
        assert.deepEqual((await env.po.read('bob', 'phone', 0, 10)).gap, notice);

        // An ack below `to` keeps it; one that reaches `to` removes it, for good.
        await env.po.ack('bob', 'phone', 2);
        assert.deepEqual((await env.po.read('bob', 'phone', 0, 10)).gap, notice);
        await env.po.ack('bob', 'phone', 3);
        assert.equal((await env.po.read('bob', 'phone', 0, 10)).gap, undefined);
        await env.po.ack('bob', 'phone', 4);
        await env.reopen();
        const page = await env.po.read('bob', 'phone', 0, 10);
        assert.equal(page.gap, undefined);
        assert.equal(page.expired, undefined);
        assert.deepEqual(page.messages, []);
      });
    });

    it('a notice goes only to devices still below the message and only for messages that were for them', T, async () => {
      await withEnv(factory, {}, async ({ po, clock }) => {
        await po.registerDevice('bob', 'phone');
        await po.registerDevice('bob', 'laptop', 'oldest');
        await po.send({ to: 'bob', from: 'a', id: 'all', body: 'x', ttlSeconds: 60 }); // 1
        await po.send({ to: 'bob', from: 'a', id: 'lap', body: 'y', toDevice: 'laptop', ttlSeconds: 60 }); // 2
        await po.send({ to: 'bob', from: 'a', id: 'keep', body: 'z', ttlSeconds: 3600 }); // 3
        await po.ack('bob', 'phone', 1); // the phone has seen 1; 2 was never for it
        clock.advance(60_000);
        assert.deepEqual((await po.read('bob', 'phone', 0, 10)).expired, undefined, 'nothing of the phone expired unseen');
        assert.deepEqual((await po.read('bob', 'laptop', 0, 10)).expired, [1, 2]);
        assert.equal(await po.sweepNow(), 2);
        const phone = await po.read('bob', 'phone', 0, 10);
        assert.equal(phone.gap, undefined);
        assert.deepEqual(seqsOf(phone.messages), [3]);
        const laptop = await po.read('bob', 'laptop', 0, 10);
        assert.deepEqual(laptop.gap, { from: 1, to: 2, count: 2, reasons: ['expired'] });
        assert.deepEqual(seqsOf(laptop.messages), [3]);
      });
    });

    it('a purge leaves a notice for what each device had not acked, merged with an earlier one', T, async () => {
      await withEnv(factory, {}, async (env) => {
        const { po, clock } = env;
        await po.registerDevice('bob', 'phone');
        await po.send({ to: 'bob', from: 'a', id: 'p1', body: 'x', ttlSeconds: 3600 }); // 1
        await po.send({ to: 'bob', from: 'a', id: 'p2', body: 'x', ttlSeconds: 60 }); // 2: expires
        await po.send({ to: 'bob', from: 'a', id: 'p3', body: 'x', ttlSeconds: 3600 }); // 3
        await po.send({ to: 'bob', from: 'a', id: 'p4', body: 'x', ttlSeconds: 3600 }); // 4
        await po.ack('bob', 'phone', 1);
        clock.advance(60_000);
        assert.equal(await po.sweepNow(), 1);
        assert.deepEqual((await po.read('bob', 'phone', 0, 10)).gap, { from: 2, to: 2, count: 1, reasons: ['expired'] });
        assert.equal((await po.purge('bob')).deleted, 2);
        const page = await po.read('bob', 'phone', 0, 10);
        assert.deepEqual(page.messages, []);
        assert.deepEqual(page.gap, { from: 2, to: 4, count: 3, reasons: ['expired', 'purged'] });
        await env.reopen();
        assert.deepEqual((await env.po.read('bob', 'phone', 0, 10)).gap, page.gap);
        await env.po.ack('bob', 'phone', 4);
        assert.equal((await env.po.read('bob', 'phone', 0, 10)).gap, undefined);
        // A purge that removes nothing the device had not acked leaves nothing.
        await env.po.send({ to: 'bob', from: 'a', id: 'p5', body: 'x' }); // 5
        await env.po.ack('bob', 'phone', 5);
        await env.po.purge('bob');
        assert.equal((await env.po.read('bob', 'phone', 0, 10)).gap, undefined);
      });
    });

    it("an admin's skip leaves a notice for the messages for the device it passed, merged with one there; only an ack of its `to` clears it", T, async () => {
      await withEnv(factory, {}, async (env) => {
        const { po, clock } = env;
        await po.registerDevice('bob', 'phone');
        await po.registerDevice('bob', 'laptop', 'oldest');
        await po.send({ to: 'bob', from: 'a', id: 's1', body: 'x', ttlSeconds: 60 }); // 1: expires, swept
        await po.send({ to: 'bob', from: 'a', id: 's2', body: 'x', ttlSeconds: 3600 }); // 2
        clock.advance(60_000);
        assert.equal(await po.sweepNow(), 1);
        await po.send({ to: 'bob', from: 'a', id: 's3', body: 'x', toDevice: 'laptop' }); // 3: not for the phone
        await po.send({ to: 'bob', from: 'a', id: 's4', body: 'x' }); // 4
        await po.send({ to: 'bob', from: 'a', id: 's5', body: 'x', toDevice: 'phone' }); // 5
        const expired = { from: 1, to: 1, count: 1, reasons: ['expired'] };
        assert.deepEqual((await po.read('bob', 'phone', 0, 10)).gap, expired);

        // 1 was already gone (and noted), 3 was never the phone's: 2, 4 and 5 are what it skips.
        assert.deepEqual(await po.ack('bob', 'phone', 5, { adminSkip: true }), { cursor: 5, deleted: 1 });
        const notice = { from: 1, to: 5, count: 4, reasons: ['expired', 'purged'] };
        let page = await po.read('bob', 'phone', 0, 10);
        assert.deepEqual(page.messages, []);
        assert.deepEqual(page.gap, notice);
        assert.deepEqual((await po.read('bob', 'laptop', 0, 10)).gap, expired, "the laptop's notice is its own");
        await env.reopen();
        assert.deepEqual((await env.po.read('bob', 'phone', 0, 10)).gap, notice, 'durable');
        // It moves with the mailbox, though it lies below the cursor.
        const lines = async function* (): AsyncGenerator<string> {
          for await (const line of exportLines(env.po, 'bob')) yield line.trimEnd();
        };
        await importLines(env.po, lines(), { user: 'zed' });
        assert.deepEqual((await env.po.read('zed', 'phone', 0, 10)).gap, notice, 'imported');

        // The cursor is past the notice: an ack below its `to` keeps it, one of `to` removes it.
        assert.deepEqual(await env.po.ack('bob', 'phone', 4), { cursor: 5, deleted: 0 });
        assert.deepEqual((await env.po.read('bob', 'phone', 0, 10)).gap, notice);
        assert.deepEqual(await env.po.ack('bob', 'phone', 5), { cursor: 5, deleted: 0 });
        page = await env.po.read('bob', 'phone', 0, 10);
        assert.equal(page.gap, undefined);
        assert.equal((await env.po.listDevices('bob')).find((d) => d.device === 'phone')?.cursor, 5);
        await env.reopen();
        assert.equal((await env.po.read('bob', 'phone', 0, 10)).gap, undefined, 'cleared for good');

        // A skip past nothing for the device leaves nothing.
        await env.po.send({ to: 'bob', from: 'a', id: 's6', body: 'x', toDevice: 'laptop' }); // 6
        assert.deepEqual(await env.po.ack('bob', 'phone', 6, { adminSkip: true }), { cursor: 6, deleted: 0 });
        assert.equal((await env.po.read('bob', 'phone', 0, 10)).gap, undefined);
      });
    });

    it('device removal leaves no notice behind, on the removed device or any other', T, async () => {
      await withEnv(factory, {}, async ({ po, clock }) => {
        await po.registerDevice('bob', 'phone');
        await po.registerDevice('bob', 'old', 'oldest');
        await po.send({ to: 'bob', from: 'a', id: 'r1', body: 'x', ttlSeconds: 60 }); // 1
        await po.send({ to: 'bob', from: 'a', id: 'r2', body: 'x', toDevice: 'old', ttlSeconds: 3600 }); // 2
        await po.send({ to: 'bob', from: 'a', id: 'r3', body: 'x', ttlSeconds: 3600 }); // 3
        clock.advance(60_000);
        assert.equal(await po.sweepNow(), 1);
        assert.deepEqual((await po.read('bob', 'old', 0, 10)).gap, { from: 1, to: 1, count: 1, reasons: ['expired'] });
        assert.ok(await po.removeDevice('bob', 'old')); // drops 2 (only 'old' was to see it)
        assert.deepEqual((await po.read('bob', 'phone', 0, 10)).gap, { from: 1, to: 1, count: 1, reasons: ['expired'] }, "the phone's own notice stays");
        await po.ack('bob', 'phone', 3);
        assert.equal((await po.read('bob', 'phone', 0, 10)).gap, undefined);
        // The same id registered again is a new device: no notice of the old one's.
        await po.registerDevice('bob', 'old', 'oldest');
        const again = await po.read('bob', 'old', 0, 10);
        assert.equal(again.gap, undefined);
        assert.equal(again.expired, undefined);
      });
    });
  });
}
