/** Conformance: fair quotas, a per-sender share of each mailbox, kept atomically with the append. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type EngineFactory, rejectsWith, withEnv } from './helpers.js';

const T = { timeout: 60_000 };
/** Two messages (or 25 bytes) per sender in a mailbox of 8 messages / 100 bytes. */
const SHARE = { limits: { maxMailboxMessages: 8, maxMailboxBytes: 100, senderShare: 0.25 } };

export function defineFairQuotaBehaviours(factory: EngineFactory): void {
  describe('fair quotas', () => {
    it('refuses a sender at its share with SENDER_QUOTA while another sender still gets through', T, async () => {
      await withEnv(factory, SHARE, async ({ po }) => {
        await po.registerDevice('bob', 'phone');
        await po.send({ to: 'bob', from: 'alice', id: 'a1', body: 'x' });
        await po.send({ to: 'bob', from: 'alice', id: 'a2', body: 'x' });
        const err = await rejectsWith(po.send({ to: 'bob', from: 'alice', id: 'a3', body: 'x' }), 'SENDER_QUOTA');
        assert.equal(err.retryable, true, 'retry later');
        const carol = await po.send({ to: 'bob', from: 'carol', id: 'c1', body: 'x' });
        assert.equal(carol.seq, 3, 'the refused send took no seq');
        await po.send({ to: 'dave', from: 'alice', id: 'a3', body: 'x' }); // another mailbox: its own share
        const resend = await po.send({ to: 'bob', from: 'alice', id: 'a2', body: 'x' });
        assert.deepEqual([resend.seq, resend.duplicate], [2, true], 'a resend of a stored message is a duplicate, not a refusal');
        assert.equal((await po.stats('bob')).pending, 3);
      });
    });

    it('counts bytes too', T, async () => {
      await withEnv(factory, SHARE, async ({ po }) => {
        await po.send({ to: 'bob', from: 'alice', id: 'a1', body: 'x'.repeat(20) });
        await rejectsWith(po.send({ to: 'bob', from: 'alice', id: 'a2', body: 'x'.repeat(6) }), 'SENDER_QUOTA');
        await po.send({ to: 'bob', from: 'alice', id: 'a3', body: 'x'.repeat(5) }); // exactly 25
        await po.send({ to: 'bob', from: 'carol', id: 'c1', body: 'x'.repeat(25) });
      });
    });

    it('holds within one group commit: a burst from one sender stores only its share', T, async () => {
      await withEnv(factory, SHARE, async ({ po }) => {
        const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => po.send({ to: 'bob', from: 'alice', id: `a${i}`, body: 'x' })));
        const codes = results.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as { code: string }).code));
        assert.deepEqual(codes, ['ok', 'ok', 'SENDER_QUOTA', 'SENDER_QUOTA', 'SENDER_QUOTA']);
        assert.equal((await po.stats('bob')).pending, 2);
      });
    });

    it('gives the share back when the messages leave: acked by every device, expired, purged, device removed', T, async () => {
      await withEnv(factory, SHARE, async ({ po, clock }) => {
        await po.registerDevice('bob', 'phone');
        await po.registerDevice('bob', 'laptop');
        await po.send({ to: 'bob', from: 'alice', id: 'a1', body: 'x' });
        await po.send({ to: 'bob', from: 'alice', id: 'a2', body: 'x', ttlSeconds: 60 });
        await rejectsWith(po.send({ to: 'bob', from: 'alice', id: 'a3', body: 'x' }), 'SENDER_QUOTA');
        await po.ack('bob', 'phone', 1);
        await rejectsWith(po.send({ to: 'bob', from: 'alice', id: 'a3', body: 'x' }), 'SENDER_QUOTA', undefined);
        await po.ack('bob', 'laptop', 1); // seq 1 acked by every device: deleted
        await po.send({ to: 'bob', from: 'alice', id: 'a3', body: 'x' }); // seq 3
        await rejectsWith(po.send({ to: 'bob', from: 'alice', id: 'a4', body: 'x' }), 'SENDER_QUOTA');
        clock.advance(60_000);
        assert.equal(await po.sweepNow(), 1); // seq 2 expired
        await po.send({ to: 'bob', from: 'alice', id: 'a4', body: 'x' }); // seq 4
        await rejectsWith(po.send({ to: 'bob', from: 'alice', id: 'a5', body: 'x' }), 'SENDER_QUOTA');
        await po.purge('bob');
        await po.send({ to: 'bob', from: 'alice', id: 'a5', body: 'x', toDevice: 'laptop' }); // seq 5
        await po.send({ to: 'bob', from: 'alice', id: 'a6', body: 'x', toDevice: 'laptop' }); // seq 6
        await rejectsWith(po.send({ to: 'bob', from: 'alice', id: 'a7', body: 'x' }), 'SENDER_QUOTA');
        await po.removeDevice('bob', 'laptop'); // its messages go with it
        await po.send({ to: 'bob', from: 'alice', id: 'a7', body: 'x' });
        assert.equal((await po.stats('bob')).pending, 1);
      });
    });

    it('an exempt send is never refused for the share, and still counts toward it', T, async () => {
      await withEnv(factory, SHARE, async ({ po }) => {
        for (let i = 0; i < 3; i++) await po.send({ to: 'bob', from: 'backend', id: `b${i}`, body: 'x', senderQuotaExempt: true });
        await rejectsWith(po.send({ to: 'bob', from: 'backend', id: 'b3', body: 'x' }), 'SENDER_QUOTA');
        await po.send({ to: 'bob', from: 'alice', id: 'a1', body: 'x' });
        const stats = await po.stats('bob');
        assert.equal(stats.pending, 4);
      });
    });

    it('a share of 1 turns the check off (the mailbox quota still holds)', T, async () => {
      await withEnv(factory, { limits: { maxMailboxMessages: 3, senderShare: 1 } }, async ({ po }) => {
        for (let i = 0; i < 3; i++) await po.send({ to: 'bob', from: 'alice', id: `a${i}`, body: 'x' });
        await rejectsWith(po.send({ to: 'bob', from: 'alice', id: 'a3', body: 'x' }), 'MAILBOX_FULL');
      });
    });

    it('keeps the counters across a restart', T, async () => {
      await withEnv(factory, SHARE, async (env) => {
        await env.po.registerDevice('bob', 'phone');
        await env.po.send({ to: 'bob', from: 'alice', id: 'a1', body: 'x' });
        await env.po.send({ to: 'bob', from: 'alice', id: 'a2', body: 'x' });
        const po = await env.reopen();
        await rejectsWith(po.send({ to: 'bob', from: 'alice', id: 'a3', body: 'x' }), 'SENDER_QUOTA');
        await po.ack('bob', 'phone', 2);
        const po2 = await env.reopen();
        await po2.send({ to: 'bob', from: 'alice', id: 'a3', body: 'x' });
        await po2.send({ to: 'bob', from: 'alice', id: 'a4', body: 'x' });
        await rejectsWith(po2.send({ to: 'bob', from: 'alice', id: 'a5', body: 'x' }), 'SENDER_QUOTA');
      });
    });
  });
}
