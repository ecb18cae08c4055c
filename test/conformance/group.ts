/** Conformance: group sends (one message to many recipients through one store append). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RecipientOutcome } from '../../src/core/types.js';
import { type EngineFactory, readAll, rejectsWith, withEnv } from './helpers.js';

const T = { timeout: 300_000 };

const members = (n: number, prefix = 'member'): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

function stored(o: RecipientOutcome | undefined): { to: string; seq: number; duplicate: boolean } {
  assert.ok(o, 'a result for every recipient');
  assert.ok(o.ok, `expected ${o.to} stored, got ${o.ok ? '' : `${o.error.code}: ${o.error.message}`}`);
  return { to: o.to, seq: o.seq, duplicate: o.duplicate };
}

export function defineGroupBehaviours(factory: EngineFactory): void {
  describe('group sends', () => {
    it('stores the message once in each member mailbox, with that mailbox own next seq, results in the order given', T, async () => {
      await withEnv(factory, {}, async ({ po, clock }) => {
        const to = members(40);
        // Two members already have messages: their seqs continue from there.
        await po.send({ to: to[3]!, from: 'x', id: 'before-1', body: 'b' });
        await po.send({ to: to[3]!, from: 'x', id: 'before-2', body: 'b' });
        await po.send({ to: to[7]!, from: 'x', id: 'before-1', body: 'b' });
        for (const u of to) await po.registerDevice(u, 'phone');
        const r = await po.sendGroup({ to, from: 'alice', id: 'g-1', body: 'hello group', ttlSeconds: 600 });
        assert.equal(r.durable, true);
        assert.deepEqual(
          r.results.map(stored),
          to.map((u) => ({ to: u, seq: u === to[3] ? 3 : u === to[7] ? 2 : 1, duplicate: false })),
        );
        const seqOf = new Map(r.results.map((o) => [o.to, stored(o).seq]));
        for (const u of to) {
          const got = (await readAll(po, u, 'phone')).filter((m) => m.id === 'g-1');
          assert.equal(got.length, 1, `${u} has the message exactly once`);
          assert.deepEqual(got[0], { seq: seqOf.get(u), id: 'g-1', from: 'alice', to: u, body: 'hello group', bytes: 11, sentAt: clock.now(), expiresAt: clock.now() + 600_000 });
        }
      });
    });

    it('dedupes the same id per recipient: a resend is a duplicate for each, a new member is stored', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        const to = members(12);
        // One member already got this id as a one-to-one send.
        const solo = await po.send({ to: to[5]!, from: 'alice', id: 'g-2', body: 'hi' });
        const first = await po.sendGroup({ to, from: 'alice', id: 'g-2', body: 'hi' });
        assert.deepEqual(stored(first.results[5]), { to: to[5], seq: solo.seq, duplicate: true });
        assert.equal(first.results.filter((o) => o.ok && !o.duplicate).length, 11);
        const again = await po.sendGroup({ to: [...to, 'newcomer'], from: 'alice', id: 'g-2', body: 'hi' });
        for (let i = 0; i < to.length; i++) assert.deepEqual(stored(again.results[i]), { ...stored(first.results[i]), duplicate: true });
        assert.deepEqual(stored(again.results[to.length]), { to: 'newcomer', seq: 1, duplicate: false });
        for (const u of to) assert.equal((await po.stats(u)).pending, 1, `${u} holds one copy`);
      });
    });

    it('a full mailbox refuses only its owner; everyone else is stored', T, async () => {
      await withEnv(factory, { limits: { maxMailboxMessages: 2, senderShare: 1 } }, async ({ po }) => {
        const to = members(10);
        await po.send({ to: to[4]!, from: 'x', id: 'fill-1', body: 'b' });
        await po.send({ to: to[4]!, from: 'x', id: 'fill-2', body: 'b' });
        const r = await po.sendGroup({ to, from: 'alice', id: 'g-3', body: 'hi' });
        const refused = r.results[4]!;
        assert.equal(refused.to, to[4]);
        assert.ok(!refused.ok && refused.error.code === 'MAILBOX_FULL' && refused.error.retryable);
        for (const [i, o] of r.results.entries()) if (i !== 4) assert.deepEqual(stored(o), { to: to[i], seq: 1, duplicate: false });
        assert.deepEqual([(await po.stats(to[4]!)).pending, (await po.stats(to[4]!)).lastSeq], [2, 2]);
      });
    });

    it('refuses a bad group as a whole, storing nothing: too many, repeated or no recipients, a toDevice, a bad body', T, async () => {
      await withEnv(factory, { limits: { maxRecipients: 5, maxBodyBytes: 10 } }, async ({ po }) => {
        await rejectsWith(po.sendGroup({ to: members(6), from: 'a', id: 'x', body: 'b' }), 'BAD_REQUEST', 'to');
        await rejectsWith(po.sendGroup({ to: ['u1', 'u2', 'u1'], from: 'a', id: 'x', body: 'b' }), 'BAD_REQUEST', 'to');
        await rejectsWith(po.sendGroup({ to: [], from: 'a', id: 'x', body: 'b' }), 'BAD_REQUEST', 'to');
        await rejectsWith(po.sendGroup({ to: ['u1', 'bad user'], from: 'a', id: 'x', body: 'b' }), 'BAD_REQUEST');
        await rejectsWith(po.sendGroup({ to: ['u1'], toDevice: 'phone', from: 'a', id: 'x', body: 'b' } as never), 'BAD_REQUEST');
        await rejectsWith(po.sendGroup({ to: ['u1', 'u2'], from: 'a', id: 'x', body: 'x'.repeat(11) }), 'PAYLOAD_TOO_LARGE', 'body');
        const ok = await po.sendGroup({ to: members(5), from: 'a', id: 'x', body: 'b' });
        assert.equal(ok.results.filter((o) => o.ok && o.seq === 1).length, 5);
        assert.deepEqual(await po.store.users(), members(5).sort());
      });
    });

    it('keeps a group whole when one-to-one sends share its batch', T, async () => {
      await withEnv(factory, { maxBatch: 8 }, async ({ po }) => {
        const to = members(20);
        const singles = Array.from({ length: 10 }, (_, i) => po.send({ to: 'solo', from: 'a', id: `s${i}`, body: 'b' }));
        const group = po.sendGroup({ to, from: 'a', id: 'g-4', body: 'b' });
        const [r, ...solo] = await Promise.all([group, ...singles]);
        assert.deepEqual(
          r.results.map((o) => stored(o).seq),
          to.map(() => 1),
        );
        assert.deepEqual(
          solo.map((s) => s.seq),
          Array.from({ length: 10 }, (_, i) => i + 1),
        );
      });
    });
  });
}
