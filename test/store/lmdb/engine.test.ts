/** What only the embedded engine does: opening on disk, its flags, and its key layout. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PoboxError } from '../../../src/core/errors.js';
import { openStore } from '../../../src/store/open.js';
import { openLmdbStore } from '../../../src/store/lmdb/index.js';
import { messageRange } from '../../../src/store/lmdb/keys.js';

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
});
