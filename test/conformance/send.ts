/** Conformance: sending, ordering, dedupe, paging and read isolation. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StoredMessage } from '../../src/core/types.js';
import { type EngineFactory, idsOf, readAll, seqsOf, sendMany, withEnv } from './helpers.js';

// The concurrency test sends 10,000 messages to one user: on DynamoDB Local (a JVM sharing two
// cores with the rest of the suite) it took 79-100 s in CI runs, and over 120 s with more load.
const T = { timeout: 240_000 };

export function defineSendBehaviours(factory: EngineFactory): void {
  describe('send and order', () => {
    it('assigns seqs 1, 2, 3 per user, independently for each user, durable', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        const a1 = await po.send({ to: 'alice', from: 's', id: 'x1', body: 'one' });
        const a2 = await po.send({ to: 'alice', from: 's', id: 'x2', body: 'two' });
        const b1 = await po.send({ to: 'bob', from: 's', id: 'x1', body: 'uno' });
        const a3 = await po.send({ to: 'alice', from: 's', id: 'x3', body: 'three' });
        assert.deepEqual([a1.seq, a2.seq, a3.seq, b1.seq], [1, 2, 3, 1]);
        for (const r of [a1, a2, a3, b1]) {
          assert.equal(r.durable, true);
          assert.equal(r.duplicate, false);
          assert.equal(typeof r.epoch, 'string');
          assert.ok(r.epoch.length > 0);
        }
        assert.equal(a1.epoch, a3.epoch);
      });
    });

    it('stores every field of a message and hands it back unchanged', T, async ({ name }) => {
      await withEnv(factory, {}, async ({ po, clock }) => {
        await po.registerDevice('bob', 'phone');
        const body = `héllo 👋 ${name}`;
        const sentAt = clock.now();
        const r = await po.send({ to: 'bob', toDevice: 'phone', from: 'alice', id: 'msg-1', body, ttlSeconds: 3600, receipt: true });
        const page = await po.read('bob', 'phone', 0, 10);
        assert.deepEqual(page.messages, [
          {
            seq: r.seq,
            id: 'msg-1',
            from: 'alice',
            to: 'bob',
            toDevice: 'phone',
            body,
            bytes: Buffer.byteLength(body, 'utf8'),
            sentAt,
            expiresAt: sentAt + 3600_000,
            receipt: true,
          },
        ]);
        assert.equal(page.epoch, r.epoch);
        assert.equal(page.lastSeq, r.seq);
      });
    });

    it('gives a message the default retention when no ttl is asked for', T, async () => {
      await withEnv(factory, { retention: { defaultTtlSeconds: 120, maxTtlSeconds: 600 } }, async ({ po, clock }) => {
        await po.registerDevice('bob', 'phone');
        await po.send({ to: 'bob', from: 'alice', id: 'a', body: 'x' });
        const [m] = (await po.read('bob', 'phone', 0, 1)).messages;
        assert.equal(m?.expiresAt, clock.now() + 120_000);
      });
    });

    it('keeps strict per-user order under 50 concurrent senders x 200 messages', T, async () => {
      const senders = 50;
      const each = 200;
      await withEnv(factory, { limits: { maxMailboxMessages: senders * each } }, async ({ po }) => {
        await po.registerDevice('hub', 'd1');
        const acked = new Map<string, number>(); // id -> seq acknowledged to the sender
        const perSender: number[][] = [];
        await Promise.all(
          Array.from({ length: senders }, async (_, s) => {
            const mine: number[] = [];
            perSender.push(mine);
            for (let i = 0; i < each; i++) {
              const id = `s${s}-m${i}`;
              const r = await po.send({ to: 'hub', from: `sender${s}`, id, body: `${s}:${i}` });
              assert.equal(r.duplicate, false);
              acked.set(id, r.seq);
              mine.push(r.seq);
            }
          }),
        );
        assert.equal(acked.size, senders * each);
        const all = await readAll(po, 'hub', 'd1', 0, 1000);
        assert.equal(all.length, senders * each, 'every acknowledged message is stored once');
        for (let i = 1; i < all.length; i++) assert.ok(all[i]!.seq > all[i - 1]!.seq, `seq ${all[i]!.seq} after ${all[i - 1]!.seq}`);
        const seen = new Set<string>();
        for (const m of all) {
          assert.ok(!seen.has(m.id), `${m.id} stored twice`);
          seen.add(m.id);
          assert.equal(m.seq, acked.get(m.id), `${m.id} stored at the seq it was acknowledged with`);
          const [s, i] = m.id.slice(1).split('-m');
          assert.equal(m.body, `${s}:${i}`);
        }
        // A sender that waited for each ack sees its own messages in the order it sent them.
        for (const mine of perSender) for (let i = 1; i < mine.length; i++) assert.ok(mine[i]! > mine[i - 1]!);
        const stats = await po.stats('hub');
        assert.equal(stats.pending, senders * each);
        assert.equal(stats.lastSeq, Math.max(...acked.values()));
      });
    });

    it('keeps concurrent senders to different users apart, each user numbered 1..n', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        const users = Array.from({ length: 20 }, (_, i) => `user${i}`);
        for (const u of users) await po.registerDevice(u, 'd');
        await Promise.all(
          users.flatMap((u) =>
            Array.from({ length: 3 }, async (_, s) => {
              for (let i = 0; i < 15; i++) await po.send({ to: u, from: `from${s}`, id: `${u}-${s}-${i}`, body: `${u}|${s}|${i}` });
            }),
          ),
        );
        for (const u of users) {
          const msgs = await readAll(po, u, 'd');
          assert.deepEqual(
            seqsOf(msgs),
            Array.from({ length: 45 }, (_, i) => i + 1),
          );
          for (const m of msgs) {
            assert.equal(m.to, u);
            assert.ok((m.body as string).startsWith(`${u}|`), `${u} got ${String(m.body)}`);
          }
        }
      });
    });
  });

  describe('dedupe', () => {
    it('answers a resend with the original seq and stores nothing twice', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await po.registerDevice('bob', 'phone');
        const first = await po.send({ to: 'bob', from: 'alice', id: 'dup', body: 'original' });
        const again = await po.send({ to: 'bob', from: 'alice', id: 'dup', body: 'changed body' });
        assert.equal(again.seq, first.seq);
        assert.equal(again.duplicate, true);
        const next = await po.send({ to: 'bob', from: 'alice', id: 'other', body: 'next' });
        assert.equal(next.seq, first.seq + 1, 'a duplicate does not use up a seq');
        const msgs = await readAll(po, 'bob', 'phone');
        assert.deepEqual(idsOf(msgs), ['dup', 'other']);
        assert.equal(msgs[0]!.body, 'original', 'the first body is kept');
        assert.equal((await po.stats('bob')).pending, 2);
      });
    });

    it('dedupes resends that arrive in the same batch', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        const results = await Promise.all(Array.from({ length: 6 }, () => po.send({ to: 'bob', from: 'alice', id: 'same', body: 'b' })));
        assert.equal(new Set(results.map((r) => r.seq)).size, 1, 'one seq for every copy');
        assert.equal(results.filter((r) => !r.duplicate).length, 1, 'exactly one copy is new');
        const stats = await po.stats('bob');
        assert.equal(stats.pending, 1);
        assert.equal(stats.lastSeq, 1);
      });
    });

    it('treats the same id sent to two users as two messages', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        const a = await po.send({ to: 'alice', from: 'carol', id: 'shared', body: 'a' });
        const b = await po.send({ to: 'bob', from: 'carol', id: 'shared', body: 'b' });
        assert.equal(a.duplicate, false);
        assert.equal(b.duplicate, false);
        assert.equal((await po.stats('alice')).pending, 1);
        assert.equal((await po.stats('bob')).pending, 1);
      });
    });

    it('still recognises a resend after the original was acked and deleted', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await po.registerDevice('bob', 'phone');
        const first = await po.send({ to: 'bob', from: 'alice', id: 'gone', body: 'x' });
        const ack = await po.ack('bob', 'phone', first.seq);
        assert.equal(ack.deleted, 1);
        const again = await po.send({ to: 'bob', from: 'alice', id: 'gone', body: 'x' });
        assert.deepEqual([again.seq, again.duplicate], [first.seq, true]);
        assert.equal((await po.stats('bob')).pending, 0, 'the resend did not bring the message back');
      });
    });
  });

  describe('paging and isolation', () => {
    it('pages with nextAfter and more until the mailbox is drained', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await po.registerDevice('bob', 'phone');
        await sendMany(po, 'bob', 25);
        const p1 = await po.read('bob', 'phone', 0, 10);
        assert.deepEqual([p1.messages.length, p1.nextAfter, p1.more, p1.lastSeq], [10, 10, true, 25]);
        const p2 = await po.read('bob', 'phone', p1.nextAfter, 10);
        assert.deepEqual([p2.messages.length, p2.nextAfter, p2.more], [10, 20, true]);
        const p3 = await po.read('bob', 'phone', p2.nextAfter, 10);
        assert.deepEqual([p3.messages.length, p3.nextAfter, p3.more], [5, 25, false]);
        const all: StoredMessage[] = [...p1.messages, ...p2.messages, ...p3.messages];
        assert.deepEqual(
          seqsOf(all),
          Array.from({ length: 25 }, (_, i) => i + 1),
        );
        const p4 = await po.read('bob', 'phone', p3.nextAfter, 10);
        assert.deepEqual([p4.messages.length, p4.more], [0, false]);
      });
    });

    it('a read touches only the reader’s own keys, however much others hold', T, async () => {
      await withEnv(factory, {}, async ({ po, store }) => {
        await po.registerDevice('target', 'd');
        await sendMany(po, 'target', 30);
        const limit = 10;
        const measure = async (): Promise<number> => {
          const before = store.counters().keysRead;
          const page = await po.read('target', 'd', 0, limit);
          assert.equal(page.messages.length, limit);
          return store.counters().keysRead - before;
        };
        const alone = await measure();
        // Fill many other users, some sorting before and some after 'target'.
        const others = Array.from({ length: 200 }, (_, i) => (i % 2 ? `a-user${i}` : `z-user${i}`));
        await Promise.all(others.map((u) => Promise.all(Array.from({ length: 20 }, (_, k) => po.send({ to: u, from: 's', id: `o${k}`, body: 'filler' })))));
        assert.equal((await po.stats('z-user0')).pending, 20);
        const crowded = await measure();
        assert.ok(alone <= limit + 3, `a page of ${limit} read ${alone} keys`);
        assert.equal(crowded, alone, `the same read touched ${alone} keys alone and ${crowded} among 4,000 other messages`);
      });
    });
  });
}
