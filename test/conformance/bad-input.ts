/** Conformance: bad input gets the right typed error, and nothing is stored. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SendInput } from '../../src/postoffice/schemas.js';
import { type Env, type EngineFactory, rejectsWith, withEnv } from './helpers.js';

const T = { timeout: 60_000 };

/** Assert a send is refused with `code` and that the store wrote nothing for it. */
async function refusedAndNothingStored(env: Env, input: unknown, code: Parameters<typeof rejectsWith>[1], field?: string): Promise<void> {
  const written = env.store.counters().keysWritten;
  await rejectsWith(env.po.send(input as SendInput), code, field);
  assert.equal(env.store.counters().keysWritten, written, `nothing written for ${JSON.stringify(input)?.slice(0, 80)}`);
}

const good = { to: 'bob', from: 'alice', id: 'm1', body: 'hello' };

export function defineBadInputBehaviours(factory: EngineFactory): void {
  describe('bad input', () => {
    it('refuses user, device and message ids outside the alphabet', T, async () => {
      await withEnv(factory, {}, async (env) => {
        const bad = ['', ' bob', 'bo b', 'bob/x', '-bob', 'bøb', 'a'.repeat(65), 'bob\n', '../etc'];
        for (const to of bad) await refusedAndNothingStored(env, { ...good, to }, 'BAD_REQUEST', 'to');
        for (const from of bad) await refusedAndNothingStored(env, { ...good, from }, 'BAD_REQUEST', 'from');
        for (const toDevice of bad) await refusedAndNothingStored(env, { ...good, toDevice }, 'BAD_REQUEST', 'toDevice');
        for (const id of ['', 'a b', 'x'.repeat(129), '#1']) await refusedAndNothingStored(env, { ...good, id }, 'BAD_REQUEST', 'id');
        await rejectsWith(env.po.registerDevice('bob', 'bad device'), 'BAD_REQUEST', 'device');
        await rejectsWith(env.po.registerDevice('bad user', 'phone'), 'BAD_REQUEST', 'user');
        await rejectsWith(env.po.stats('../x'), 'BAD_REQUEST', 'user');
        await rejectsWith(env.po.purge(''), 'BAD_REQUEST', 'user');
        assert.deepEqual(await env.store.users(), [], 'no mailbox was created');
        // The longest valid ids are fine.
        const r = await env.po.send({ ...good, to: 'u'.repeat(64), from: 'f'.repeat(64), id: 'i'.repeat(128) });
        assert.equal(r.seq, 1);
      });
    });

    it('refuses an empty body (BAD_REQUEST) and an oversized one (PAYLOAD_TOO_LARGE), counting UTF-8 bytes', T, async () => {
      await withEnv(factory, { limits: { maxBodyBytes: 16 } }, async (env) => {
        await refusedAndNothingStored(env, { ...good, body: '' }, 'BAD_REQUEST', 'body');
        await refusedAndNothingStored(env, { ...good, body: 'x'.repeat(17) }, 'PAYLOAD_TOO_LARGE', 'body');
        await refusedAndNothingStored(env, { ...good, body: 'é'.repeat(9) }, 'PAYLOAD_TOO_LARGE', 'body'); // 9 chars, 18 bytes
        assert.equal((await env.po.send({ ...good, body: 'é'.repeat(8) })).seq, 1, '16 bytes is allowed');
        const stats = await env.po.stats('bob');
        assert.deepEqual([stats.pending, stats.pendingBytes], [1, 16]);
      });
    });

    it('refuses a ttl over the maximum, zero or fractional', T, async () => {
      await withEnv(factory, { retention: { defaultTtlSeconds: 60, maxTtlSeconds: 3600 } }, async (env) => {
        await refusedAndNothingStored(env, { ...good, ttlSeconds: 3601 }, 'BAD_REQUEST', 'ttlSeconds');
        await refusedAndNothingStored(env, { ...good, ttlSeconds: 0 }, 'BAD_REQUEST', 'ttlSeconds');
        await refusedAndNothingStored(env, { ...good, ttlSeconds: 1.5 }, 'BAD_REQUEST', 'ttlSeconds');
        assert.equal((await env.po.send({ ...good, ttlSeconds: 3600 })).seq, 1);
      });
    });

    it('refuses wrong types, unknown fields and non-objects with BAD_REQUEST', T, async () => {
      await withEnv(factory, {}, async (env) => {
        let rejectedEvents = 0;
        env.po.events.on('rejected', () => rejectedEvents++);
        await refusedAndNothingStored(env, { ...good, body: 42 }, 'BAD_REQUEST', 'body');
        await refusedAndNothingStored(env, { ...good, id: 7 }, 'BAD_REQUEST', 'id');
        await refusedAndNothingStored(env, { ...good, ttlSeconds: '60' }, 'BAD_REQUEST', 'ttlSeconds');
        await refusedAndNothingStored(env, { ...good, receipt: 'yes' }, 'BAD_REQUEST', 'receipt');
        await refusedAndNothingStored(env, { ...good, seq: 5 }, 'BAD_REQUEST');
        await refusedAndNothingStored(env, { to: 'bob', from: 'alice', body: 'no id' }, 'BAD_REQUEST', 'id');
        await refusedAndNothingStored(env, null, 'BAD_REQUEST');
        await refusedAndNothingStored(env, 'send this', 'BAD_REQUEST');
        assert.equal(rejectedEvents, 8);
        await rejectsWith(env.po.registerDevice('bob', 'phone', 'newest' as 'head'), 'BAD_REQUEST', 'start');
        await rejectsWith(env.po.ack('bob', 'phone', '3' as unknown as number), 'BAD_REQUEST', 'upTo');
      });
    });

    it('refuses a negative, fractional, zero or huge read limit and a negative afterSeq', T, async () => {
      await withEnv(factory, { limits: { maxPageSize: 100 } }, async (env) => {
        await env.po.registerDevice('bob', 'phone');
        await env.po.send(good);
        for (const limit of [-1, 0, 1.5, 101, 1e12, Number.NaN, Number.POSITIVE_INFINITY]) {
          await rejectsWith(env.po.read('bob', 'phone', 0, limit), 'BAD_REQUEST', 'limit');
        }
        await rejectsWith(env.po.read('bob', 'phone', -1, 10), 'BAD_REQUEST', 'afterSeq');
        await rejectsWith(env.po.read('bob', 'phone', 0.5, 10), 'BAD_REQUEST', 'afterSeq');
        assert.equal((await env.po.read('bob', 'phone', 0, 100)).messages.length, 1);
      });
    });

    it('answers NOT_FOUND for an unknown device or user, and stores nothing for it', T, async () => {
      await withEnv(factory, {}, async (env) => {
        await env.po.registerDevice('bob', 'phone');
        await env.po.send(good);
        await rejectsWith(env.po.read('bob', 'tablet', 0, 10), 'NOT_FOUND');
        await rejectsWith(env.po.read('nobody', 'phone', 0, 10), 'NOT_FOUND');
        await rejectsWith(env.po.ack('bob', 'tablet', 1), 'NOT_FOUND');
        await rejectsWith(env.po.ack('nobody', 'phone', 0), 'NOT_FOUND');
        await refusedAndNothingStored(env, { ...good, id: 'm2', toDevice: 'tablet' }, 'NOT_FOUND', 'toDevice');
        await refusedAndNothingStored(env, { ...good, to: 'nobody', toDevice: 'phone' }, 'NOT_FOUND', 'toDevice');
        assert.ok(!(await env.store.users()).includes('nobody'));
        assert.equal((await env.po.stats('bob')).pending, 1);
      });
    });

    it('refuses an ack beyond the last seq with BAD_REQUEST and leaves the cursor', T, async () => {
      await withEnv(factory, {}, async (env) => {
        await env.po.registerDevice('bob', 'phone');
        await env.po.send(good);
        await env.po.send({ ...good, id: 'm2' });
        await rejectsWith(env.po.ack('bob', 'phone', 3), 'BAD_REQUEST', 'upTo');
        await rejectsWith(env.po.ack('bob', 'phone', -1), 'BAD_REQUEST', 'upTo');
        await rejectsWith(env.po.ack('bob', 'phone', Number.MAX_SAFE_INTEGER + 2), 'BAD_REQUEST', 'upTo');
        const stats = await env.po.stats('bob');
        assert.deepEqual([stats.devices[0]?.cursor, stats.pending], [0, 2]);
      });
    });

    it('one bad message in a batch does not fail the others', T, async () => {
      await withEnv(factory, { limits: { maxMailboxMessages: 2, senderShare: 1 } }, async (env) => {
        await env.po.registerDevice('bob', 'phone');
        const results = await Promise.allSettled([
          env.po.send({ ...good, id: 'a' }),
          env.po.send({ ...good, id: 'b', toDevice: 'ghost' }),
          env.po.send({ ...good, id: 'c' }),
          env.po.send({ ...good, id: 'd' }),
          env.po.send({ ...good, to: 'carol', id: 'e' }),
        ]);
        const codes = results.map((r) => (r.status === 'fulfilled' ? r.value.seq : (r.reason as { code: string }).code));
        assert.deepEqual(codes, [1, 'NOT_FOUND', 2, 'MAILBOX_FULL', 1]);
      });
    });
  });
}
