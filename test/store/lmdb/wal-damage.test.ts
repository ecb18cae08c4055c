/**
 * A damaged write-ahead log tail, at every byte: the log is cut at each byte offset of
 * its last records, and each byte of its tail gets a flipped bit; then the store is
 * opened. Everything logged before the damage is there, nothing after it, and no error
 * reaches a reader. The recovered log takes new writes that survive the next restart.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { openLmdbStore, type LmdbStore } from '../../../src/store/lmdb/index.js';
import { decodeAll } from '../../../src/store/lmdb/wal/record.js';

// Nothing is applied to LMDB: every message lives only in the log.
const WAL = { applyIntervalMs: 3_600_000, maxResidentMessages: 1_000_000, applyOnClose: false };
const LIMITS = { maxMailboxMessages: 1000, maxMailboxBytes: 1 << 20 };
const SENDS = 8;
const DAMAGED_RECORDS = 3;

async function ids(store: LmdbStore): Promise<string[]> {
  const page = await store.read({ user: 'bob', device: 'phone', afterSeq: 0, limit: 100, now: 2 });
  assert.ok(
    page.messages.every((m, i) => m.seq === i + 1 && m.body === `body of ${m.id}`),
    'seqs and bodies intact',
  );
  assert.equal(page.lastSeq, page.messages.length, 'no seq beyond what survived');
  const stats = await store.stats('bob', 2);
  assert.equal(stats.pending, page.messages.length);
  return page.messages.map((m) => m.id);
}

describe('write-ahead log damage', () => {
  it('a cut at every byte of the last records, or a flipped bit in the tail, loses exactly what follows', { timeout: 300_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pobox-wal-damage-'));
    try {
      let store = await openLmdbStore({ path: dir, wal: WAL });
      await store.registerDevice('bob', 'phone', 'oldest', 1, 8);
      const sent: string[] = [];
      for (let i = 0; i < SENDS; i++) {
        const id = `m${i}`;
        // One append per record, so record k+1 (k >= 1) holds message k.
        await store.append([{ id, from: 'alice', to: 'bob', body: `body of ${id}`, bytes: 9 + id.length, sentAt: 1, expiresAt: 1e15 }], LIMITS);
        sent.push(id);
      }
      await store.close();

      const walDir = join(dir, 'wal');
      const segs = readdirSync(walDir);
      assert.equal(segs.length, 1);
      const file = join(walDir, segs[0]!);
      const original = readFileSync(file);
      const { records } = decodeAll(original, 1);
      assert.equal(records.length, SENDS + 1);
      const ends: number[] = [];
      let end = 0;
      for (const r of records) ends.push((end += 16 + r.payload.length));
      const wholeBefore = (offset: number): number => ends.filter((e) => e <= offset).length;
      const firstDamaged = ends[records.length - DAMAGED_RECORDS - 1]!;

      const check = async (bytes: Buffer, keptRecords: number, what: string): Promise<void> => {
        writeFileSync(file, bytes);
        const s = await openLmdbStore({ path: dir, wal: WAL });
        try {
          assert.deepEqual(await ids(s), sent.slice(0, Math.max(0, keptRecords - 1)), what);
        } finally {
          await s.close();
        }
      };
      for (let cut = firstDamaged; cut <= original.length; cut++) {
        await check(original.subarray(0, cut), wholeBefore(cut), `cut at byte ${cut} of ${original.length}`);
      }
      for (let pos = firstDamaged; pos < original.length; pos++) {
        const flipped = Buffer.from(original);
        flipped[pos]! ^= 1 << (pos % 8);
        await check(
          flipped,
          ends.findIndex((e) => pos < e),
          `bit ${pos % 8} of byte ${pos} flipped`,
        );
      }

      // Recovery cuts a torn last record (m7); a new write takes its seq and outlives a restart.
      writeFileSync(file, original.subarray(0, ends[SENDS - 1]! + 5));
      store = await openLmdbStore({ path: dir, wal: WAL });
      assert.match(store.recovery.stop, /torn/);
      const [out] = await store.append([{ id: 'after', from: 'alice', to: 'bob', body: 'body of after', bytes: 13, sentAt: 1, expiresAt: 1e15 }], LIMITS);
      assert.deepEqual(out, { ok: true, seq: SENDS, duplicate: false, epoch: out!.ok ? out!.epoch : '' });
      await store.close();
      store = await openLmdbStore({ path: dir, wal: WAL });
      assert.equal(store.recovery.stop, 'end');
      assert.deepEqual(await ids(store), [...sent.slice(0, SENDS - 1), 'after']);
      await store.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
