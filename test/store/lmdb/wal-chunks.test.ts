/**
 * The apply written in chunks (src/store/lmdb/index.ts): a crash after the chunks are
 * durable and before the last transaction (tombs, sender counters, metas, `applied`)
 * leaves LMDB holding entries of records after `applied`; replay over them must answer
 * exactly as live, and deleting a replayed message must leave no copy behind. And the
 * fewer writes per message acked before its apply: one dedupe entry each, one grouped
 * expiry entry, which the sweeper still uses to drop them when the retention ends.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { open } from 'lmdb';
import { openLmdbStore } from '../../../src/store/lmdb/index.js';
import { dedupeKey, messageRange, seqOf } from '../../../src/store/lmdb/keys.js';
import type { AppendItem } from '../../../src/store/contract.js';
import { withTempDir } from '../../support/temp-dir.js';

const WRITER = fileURLToPath(new URL('./staged-crash-writer.ts', import.meta.url));
const LIMITS = { maxMailboxMessages: 100_000, maxMailboxBytes: 1 << 30 };
const NEVER = { applyIntervalMs: 3_600_000, maxResidentMessages: 1_000_000 };
const range = (lo: number, hi: number): number[] => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);

function runWriter(dir: string, step: 'setup' | 'crash'): Promise<NodeJS.Signals | number | null> {
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir, step], { stdio: ['ignore', 'inherit', 'inherit'] });
  return new Promise((resolve) => child.on('close', (code, signal) => resolve(signal ?? code)));
}

/** What LMDB itself holds (the store must be closed): message seqs of a user, dedupe ids present, expiry entries. */
async function lmdbHolds(dir: string, user: string, ids: string[]): Promise<{ seqs: number[]; dedupe: string[]; expiry: Array<[unknown, unknown]> }> {
  const root = open({ path: dir, compression: false, cache: false, maxDbs: 8 });
  try {
    const db = root.openDB<unknown, (string | number)[]>('mailboxes', { cache: false });
    const expiry = root.openDB<unknown, (string | number)[]>('expiry', { cache: false });
    return {
      seqs: [...db.getKeys(messageRange(user, 0))].map((k) => seqOf(k as never)),
      dedupe: ids.filter((id) => db.get(dedupeKey(user, id)) !== undefined),
      expiry: [...expiry.getRange({})].map(({ key, value }) => [key, value]),
    };
  } finally {
    await root.close();
  }
}

describe('lmdb apply in chunks', () => {
  it('a crash between the chunks and the last transaction: replay answers as live, and no deleted message is left in LMDB', { timeout: 60_000 }, async () => {
    await withTempDir(async (dir) => {
      assert.equal(await runWriter(dir, 'setup'), 0);
      assert.equal(await runWriter(dir, 'crash'), 'SIGKILL');
      // The chunks are in LMDB ahead of `applied`: messages 13..30 of bob, dave's, dedupe entries.
      const staged = await lmdbHolds(dir, 'bob', []);
      assert.deepEqual(
        staged.seqs,
        range(1, 30).filter((s) => s !== 11 && s !== 12),
        'the chunks wrote the messages; the tombs wait for the last transaction',
      );

      let store = await openLmdbStore({ path: dir, wal: NEVER });
      assert.ok(store.recovery.replayed >= 5);
      const page = await store.read({ user: 'bob', device: 'phone', afterSeq: 0, limit: 100, now: 2 });
      assert.deepEqual(
        page.messages.map((m) => m.seq),
        range(13, 30),
      );
      const stats = await store.stats('bob', 2);
      assert.deepEqual([stats.pending, stats.lastSeq], [18, 30]);
      assert.equal((await store.stats('dave', 2)).pending, 5);
      // Deleting replayed messages that a chunk had already written: none may survive in LMDB.
      assert.deepEqual((await store.ack('bob', 'phone', 20)).deleted, 8);
      assert.equal((await store.exportPage('bob', 0, 20, 100)).messages.length, 0);
      // Dedupe holds for every id, stored, deleted or never stored.
      const again = await store.append(
        [12, 15, 25].map((i): AppendItem => ({ id: `m${i}`, from: 'carol', to: 'bob', body: 'x', bytes: 1, sentAt: 2, expiresAt: 1e15 })),
        LIMITS,
      );
      assert.deepEqual(
        again.map((o) => o.ok && [o.seq, o.duplicate]),
        [
          [12, true],
          [15, true],
          [25, true],
        ],
      );
      await store.close();

      const held = await lmdbHolds(
        dir,
        'bob',
        range(1, 30).map((i) => `m${i}`),
      );
      assert.deepEqual(held.seqs, range(21, 30), 'LMDB holds exactly what is pending');
      assert.equal(held.dedupe.length, 30);
      store = await openLmdbStore({ path: dir, wal: NEVER });
      assert.equal(store.recovery.replayed, 0);
      assert.deepEqual([(await store.stats('bob', 2)).pending, (await store.stats('dave', 2)).pending], [10, 5]);
      await store.close();
    });
  });

  it('messages acked before their apply cost one dedupe entry each and one grouped expiry entry, which the sweeper uses at the end of retention', async () => {
    await withTempDir(async (dir) => {
      let store = await openLmdbStore({ path: dir, wal: { ...NEVER, applyChunk: 7, applyChunkMaxBusy: 1 } });
      await store.registerDevice('bob', 'phone', 'auto', 1, 8);
      const ids = range(1, 20).map((i) => `m${i}`);
      await store.append(
        ids.map((id, i): AppendItem => ({ id, from: 'alice', to: 'bob', body: 'x', bytes: 1, sentAt: 1, expiresAt: 10_000 + i })),
        LIMITS,
      );
      await store.ack('bob', 'phone', 18);
      await store.close();
      const held = await lmdbHolds(dir, 'bob', ids);
      assert.deepEqual(held.seqs, [19, 20]);
      assert.equal(held.dedupe.length, 20);
      assert.deepEqual(
        held.expiry.map(([k]) => k),
        [
          [10_017, 'bob', -1],
          [10_018, 'bob', 19],
          [10_019, 'bob', 20],
        ],
        'one entry for the 18 never stored, one per stored message',
      );
      store = await openLmdbStore({ path: dir, wal: NEVER });
      // Inside the retention window every id is a duplicate; the sweep before its end removes nothing.
      const dup = await store.append([{ id: 'm5', from: 'alice', to: 'bob', body: 'x', bytes: 1, sentAt: 10_003, expiresAt: 20_000 }], LIMITS);
      assert.deepEqual(
        dup.map((o) => o.ok && [o.seq, o.duplicate]),
        [[5, true]],
      );
      // Not before the last of the group expires.
      assert.deepEqual(await store.sweep(10_016, 100), { expired: 0, expiredBytes: 0, cleaned: 0, more: false });
      const swept = await store.sweep(10_020, 100);
      assert.deepEqual([swept.expired, swept.cleaned], [2, 2 * 2 + 18 + 1]);
      // An id whose retention has ended is new again.
      const fresh = await store.append([{ id: 'm5', from: 'alice', to: 'bob', body: 'x', bytes: 1, sentAt: 10_021, expiresAt: 20_000 }], LIMITS);
      assert.deepEqual(
        fresh.map((o) => o.ok && [o.seq, o.duplicate]),
        [[21, false]],
      );
      await store.close();
      const after = await lmdbHolds(dir, 'bob', ids);
      assert.deepEqual(after.dedupe, ['m5']);
      assert.deepEqual(
        after.expiry.map(([k]) => k),
        [[20_000, 'bob', 21]],
      );
    });
  });
});
