/** What only the embedded engine does: opening on disk, its flags, and its key layout. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PoboxError } from '../../../src/core/errors.js';
import { openStore } from '../../../src/store/open.js';
import { openLmdbStore } from '../../../src/store/lmdb/index.js';
import { open } from 'lmdb';
import {
  dedupeKey,
  expiryKey,
  messageKey,
  messageRange,
  metaKey,
  senderKey,
  type ExpiryKey,
  type MailboxKey,
  type MessageValue,
  type MetaValue,
} from '../../../src/store/lmdb/keys.js';

describe('lmdb engine', () => {
  it('a path it cannot open is a typed UNAVAILABLE error naming the path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pobox-lmdb-'));
    try {
      const file = join(dir, 'not-a-dir');
      await writeFile(file, 'x');
      await assert.rejects(
        openLmdbStore({ path: join(file, 'sub') }),
        (err: unknown) => err instanceof PoboxError && err.code === 'UNAVAILABLE' && err.field === 'path' && err.message.includes(file),
      );
      await assert.rejects(openStore({ engine: 'lmdb', path: '' }), (err: unknown) => err instanceof PoboxError && err.code === 'BAD_REQUEST' && err.field === 'path');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('opens a data directory whose name has a dot in it, and finds its messages again after a reopen', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'pobox-lmdb-'));
    const dir = join(parent, 'pobox.d');
    try {
      const limits = { maxMailboxMessages: 100, maxMailboxBytes: 1 << 20 };
      const first = await openLmdbStore({ path: dir });
      const [out] = await first.append([{ id: 'm1', from: 'alice', to: 'bob', body: 'hi', bytes: 2, sentAt: 1, expiresAt: 1e15 }], limits);
      assert.equal(out?.ok, true);
      await first.close();
      const again = await openLmdbStore({ path: dir });
      try {
        await again.registerDevice('bob', 'phone', 'oldest', 1, 10);
        const page = await again.read({ user: 'bob', device: 'phone', afterSeq: 0, limit: 10, now: 2 });
        assert.deepEqual(
          page.messages.map((m) => [m.seq, m.id, m.body]),
          [[1, 'm1', 'hi']],
        );
      } finally {
        await again.close();
      }
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });

  it('declares group commit and embedded storage, and opens through openStore', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pobox-lmdb-'));
    try {
      const store = await openStore({ engine: 'lmdb', path: dir });
      assert.equal(store.engine, 'lmdb');
      assert.deepEqual(store.capabilities, { embedded: true });
      await store.close();
      await store.close(); // closing twice is harmless
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a user's message range is (lo, hi] and never reaches a neighbour's keys", async () => {
    assert.deepEqual(messageRange('bob', 4, 9), { start: ['bob', 1, 5], end: ['bob', 1, 10] });
    const dir = await mkdtemp(join(tmpdir(), 'pobox-lmdb-'));
    const store = await openLmdbStore({ path: dir });
    try {
      // Ids that are prefixes of each other must still keep their entries apart.
      const users = ['bo', 'bob', 'bob2', 'bob.x'];
      const limits = { maxMailboxMessages: 100, maxMailboxBytes: 1 << 20 };
      for (const to of users) {
        await store.registerDevice(to, 'd', 'auto', 1, 8);
        await store.append(
          [1, 2, 3].map((i) => ({ id: `${to}-${i}`, from: 'a', to, body: to, bytes: to.length, sentAt: 1, expiresAt: 1e15 })),
          limits,
        );
      }
      const page = await store.read({ user: 'bob', device: 'd', afterSeq: 0, limit: 100, now: 2 });
      assert.deepEqual(
        page.messages.map((m) => `${m.to}:${m.id}`),
        ['bob:bob-1', 'bob:bob-2', 'bob:bob-3'],
      );
      assert.equal(page.more, false);
      assert.deepEqual(await store.users(), [...users].sort());
      assert.deepEqual(await store.users({ after: 'bob', limit: 1 }), ['bob.x']);
      assert.deepEqual(await store.users({ after: 'bob2' }), []);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads, acks and dedupes values stored in the earlier format (records with inline definitions)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pobox-lmdb-'));
    try {
      // What lmdb-js wrote by default before the store asked for plain maps.
      const old = open({ path: dir, maxDbs: 8, compression: false, cache: false });
      const mailboxes = old.openDB<unknown, MailboxKey>('mailboxes', { cache: false });
      const expiry = old.openDB<string, ExpiryKey>('expiry', { cache: false });
      const meta: MetaValue = { epoch: 'e0', lastSeq: 2, count: 2, bytes: 10, devices: { phone: { cursor: 0, registeredAt: 1 } } };
      await mailboxes.put(metaKey('bob'), meta);
      for (const seq of [1, 2]) {
        const v: MessageValue = { id: `m${seq}`, from: 'alice', body: `old ${seq}`, bytes: 5, sentAt: 1, expiresAt: 1e15 };
        await mailboxes.put(messageKey('bob', seq), v);
        await mailboxes.put(dedupeKey('bob', v.id), { seq, expiresAt: v.expiresAt });
        await expiry.put(expiryKey(v.expiresAt, 'bob', seq), v.id);
      }
      await mailboxes.put(senderKey('bob', 'alice'), { count: 2, bytes: 10 });
      assert.equal(mailboxes.getBinary(messageKey('bob', 1))![1], 0x72, 'the old value carries an inline record definition');
      await old.close();

      const store = await openLmdbStore({ path: dir });
      try {
        const page = await store.read({ user: 'bob', device: 'phone', afterSeq: 0, limit: 10, now: 2 });
        assert.deepEqual(
          page.messages.map((m) => [m.seq, m.id, m.body]),
          [
            [1, 'm1', 'old 1'],
            [2, 'm2', 'old 2'],
          ],
        );
        assert.deepEqual([page.epoch, page.cursor, page.lastSeq], ['e0', 0, 2]);
        const limits = { maxMailboxMessages: 100, maxMailboxBytes: 1 << 20 };
        const [dup] = await store.append([{ id: 'm2', from: 'alice', to: 'bob', body: 'again', bytes: 5, sentAt: 2, expiresAt: 1e15 }], limits);
        assert.deepEqual(dup, { ok: true, seq: 2, duplicate: true, epoch: 'e0' });
        assert.equal((await store.ack('bob', 'phone', 1)).deleted, 1);
        const stats = await store.stats('bob', 2);
        assert.deepEqual([stats.pending, stats.pendingBytes], [1, 5]);
      } finally {
        await store.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
