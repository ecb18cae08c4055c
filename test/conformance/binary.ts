/** Conformance: bodies of bytes are stored and returned byte for byte; limits count bytes. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { PostOffice } from '../../src/postoffice/post-office.js';
import { type EngineFactory, readAll, rejectsWith, withEnv } from './helpers.js';
import { sampleLengths } from '../support/lengths.js';

const T = { timeout: 600_000 };
const LIMIT = 64 * 1024;

const same = (a: unknown, b: Uint8Array): boolean => a instanceof Uint8Array && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);

export function defineBinaryBehaviours(factory: EngineFactory): void {
  describe('bodies of bytes', () => {
    it('stores random bytes of sampled lengths 0..70 KiB exactly (the ones over the limit are refused), before and after a reopen', T, async () => {
      await withEnv(factory, { limits: { maxBodyBytes: LIMIT, maxMailboxBytes: 1024 * 1024 * 1024 } }, async ({ po, reopen }) => {
        await po.registerDevice('bob', 'phone');
        const lengths = sampleLengths({ max: 70 * 1024, limit: LIMIT, dense: 64, randomTriples: 40, seed: 11 });
        const sent: Uint8Array[] = [];
        for (const n of lengths) {
          const body = randomBytes(n);
          if (n > LIMIT) {
            await rejectsWith(po.send({ to: 'bob', from: 'alice', id: `len-${n}`, body }), 'PAYLOAD_TOO_LARGE', 'body');
            continue;
          }
          const r = await po.send({ to: 'bob', from: 'alice', id: `len-${n}`, body });
          assert.equal(r.seq, sent.length + 1);
          sent.push(body);
        }
        assert.ok(sent.some((b) => b.length === LIMIT) && sent.some((b) => b.length === 0), 'the edges were sent');
        const check = async (p: PostOffice, label: string): Promise<void> => {
          const got = await readAll(p, 'bob', 'phone', 0, 50);
          assert.equal(got.length, sent.length, label);
          got.forEach((m, i) => {
            assert.ok(same(m.body, sent[i]!), `${label}: message ${m.seq} (${sent[i]!.length} bytes) came back different`);
            assert.equal(m.bytes, sent[i]!.length, `${label}: bytes counts the bytes`);
          });
          const stats = await p.stats('bob');
          assert.equal(
            stats.pendingBytes,
            sent.reduce((a, b) => a + b.length, 0),
            `${label}: the byte quota counts bytes`,
          );
        };
        await check(po, 'as stored');
        // Reopened: on the embedded engine everything now comes from the B-tree, not memory.
        await check(await reopen(), 'after reopen');
      });
    });

    it('keeps text and bytes apart: the same characters as text stay a string, as bytes stay bytes', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await po.registerDevice('bob', 'phone');
        const text = 'héllo';
        await po.send({ to: 'bob', from: 'alice', id: 't', body: text });
        await po.send({ to: 'bob', from: 'alice', id: 'b', body: new TextEncoder().encode(text) });
        await po.send({ to: 'bob', from: 'alice', id: 'empty', body: new Uint8Array(0) });
        const [t, b, e] = await readAll(po, 'bob', 'phone');
        assert.equal(t!.body, text);
        assert.ok(same(b!.body, new TextEncoder().encode(text)));
        assert.equal(b!.bytes, 6);
        assert.ok(same(e!.body, new Uint8Array(0)));
        assert.equal(e!.bytes, 0);
        // An empty text body is still refused; only bytes may be empty.
        await rejectsWith(po.send({ to: 'bob', from: 'alice', id: 'x', body: '' }), 'BAD_REQUEST', 'body');
        await rejectsWith(po.send({ to: 'bob', from: 'alice', id: 'y', body: 42 as never }), 'BAD_REQUEST', 'body');
      });
    });

    it('a group send of bytes stores the same bytes for every member', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        const body = randomBytes(3001);
        const to = ['m1', 'm2', 'm3'];
        for (const u of to) await po.registerDevice(u, 'phone');
        const r = await po.sendGroup({ to, from: 'alice', id: 'g', body });
        assert.ok(r.results.every((o) => o.ok && o.seq === 1));
        for (const u of to) assert.ok(same((await readAll(po, u, 'phone'))[0]!.body, body), u);
      });
    });
  });
}
