/**
 * The embedded engine's write-ahead log, behaviour by behaviour: reads see a message as
 * soon as it is accepted, across the apply boundary with no gap and no duplicate; a
 * message acked before its apply never reaches the B-tree (its dedupe entry does); the
 * resident index stays under its size limit; a restart replays sends, acks and device
 * changes (and the gap notices they keep or clear); applied segments are deleted.
 */
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { open } from 'lmdb';
import { openLmdbStore, type LmdbStore, type LmdbStoreOptions, type WalEvent } from '../../../src/store/lmdb/index.js';
import { dedupeKey, messageRange } from '../../../src/store/lmdb/keys.js';
import type { AppendItem } from '../../../src/store/contract.js';
import { withTempDir } from '../../support/temp-dir.js';
import { PoboxError } from '../../../src/core/errors.js';

const LIMITS = { maxMailboxMessages: 100_000, maxMailboxBytes: 1 << 30 };
const NEVER = { applyIntervalMs: 3_600_000, maxResidentMessages: 1_000_000 };
const msg = (to: string, id: string): AppendItem => ({ id, from: 'alice', to, body: `body ${id}`, bytes: 5 + id.length, sentAt: 1, expiresAt: 1e15 });

/** What LMDB itself holds for a user (the store must be closed). */
async function lmdbHolds(dir: string, user: string, ids: string[]): Promise<{ messages: number; dedupe: number }> {
  const root = open({ path: dir, compression: false, cache: false, maxDbs: 8 });
  try {
    const db = root.openDB<unknown, (string | number)[]>('mailboxes', { cache: false });
    const messages = [...db.getKeys(messageRange(user, 0))].length;
    const dedupe = ids.filter((id) => db.get(dedupeKey(user, id)) !== undefined).length;
    return { messages, dedupe };
  } finally {
    await root.close();
  }
}

describe('lmdb write-ahead log', () => {
  it('a read sees an accepted message before any apply, and after it', async () => {
    await withTempDir(async (dir) => {
      const events: WalEvent[] = [];
      const store = await openLmdbStore({ path: dir, wal: { ...NEVER, onEvent: (e) => events.push(e) } });
      await store.registerDevice('bob', 'phone', 'auto', 1, 8);
      await store.append([msg('bob', 'a'), msg('bob', 'b')], LIMITS);
      assert.equal(store.residentSize().messages, 2);
      assert.deepEqual(events, [], 'nothing applied yet');
      const page = await store.read({ user: 'bob', device: 'phone', afterSeq: 0, limit: 10, now: 2 });
      assert.deepEqual(
        page.messages.map((m) => [m.seq, m.id]),
        [
          [1, 'a'],
          [2, 'b'],
        ],
      );
      await store.close();
      assert.deepEqual(events.slice(0, 2), ['apply', 'applied']);
      assert.deepEqual(await lmdbHolds(dir, 'bob', ['a', 'b']), { messages: 2, dedupe: 2 });
      const again = await openLmdbStore({ path: dir, wal: NEVER });
      assert.equal(again.recovery.replayed, 0, 'a clean close leaves nothing to replay');
      assert.deepEqual(
        (await again.read({ user: 'bob', device: 'phone', afterSeq: 0, limit: 10, now: 2 })).messages.map((m) => m.id),
        ['a', 'b'],
      );
      await again.close();
    });
  });

  it('pages read while applies run have no gap and no duplicate at the boundary', { timeout: 120_000 }, async () => {
    await withTempDir(async (dir) => {
      let applies = 0;
      const store = await openLmdbStore({ path: dir, wal: { applyIntervalMs: 3, maxResidentMessages: 25, onEvent: (e) => (e === 'applied' ? applies++ : 0) } });
      await store.registerDevice('bob', 'phone', 'auto', 1, 8);
      let sending = true;
      const sender = (async () => {
        for (let i = 0; i < 600; i++) await store.append([msg('bob', `m${i}`), msg('carol', `m${i}`)], LIMITS);
        sending = false;
      })();
      let reads = 0;
      while (sending) {
        // Reads that find everything synced never wait for I/O: let the sender's fsyncs run.
        await new Promise((r) => setImmediate(r));
        let after = 0;
        for (;;) {
          const page = await store.read({ user: 'bob', device: 'phone', afterSeq: after, limit: 7, now: 2 });
          reads++;
          const seqs = page.messages.map((m) => m.seq);
          assert.deepEqual(
            seqs,
            Array.from({ length: seqs.length }, (_, k) => after + 1 + k),
            `page after ${after}`,
          );
          if (!page.more) {
            assert.equal(seqs.length ? seqs[seqs.length - 1] : after, page.lastSeq, 'a last page ends at lastSeq');
            break;
          }
          after = page.nextAfter;
        }
      }
      await sender;
      assert.ok(applies > 5, `applies ran meanwhile (${applies})`);
      assert.ok(reads > 10);
      await store.close();
    });
  });

  it('a message acked before its apply never reaches the B-tree; its dedupe entry does', async () => {
    await withTempDir(async (dir) => {
      const store = await openLmdbStore({ path: dir, wal: NEVER });
      await store.registerDevice('bob', 'phone', 'auto', 1, 8);
      const ids = Array.from({ length: 10 }, (_, i) => `m${i}`);
      await store.append(
        ids.map((id) => msg('bob', id)),
        LIMITS,
      );
      const r = await store.ack('bob', 'phone', 7);
      assert.deepEqual([r.deleted, r.moved], [7, true]);
      assert.equal((await store.stats('bob', 2)).pending, 3);
      const [dup] = await store.append([msg('bob', 'm2')], LIMITS);
      assert.deepEqual(dup && dup.ok && [dup.seq, dup.duplicate], [3, true]);
      await store.close();
      assert.deepEqual(await lmdbHolds(dir, 'bob', ids), { messages: 3, dedupe: 10 });
    });
  });

  it('an ack after the apply deletes from LMDB, and a restart keeps the cursor', async () => {
    await withTempDir(async (dir) => {
      const opts: LmdbStoreOptions = { path: dir, wal: { ...NEVER, applyOnClose: false } };
      let store = await openLmdbStore({ path: dir, wal: NEVER });
      await store.registerDevice('bob', 'phone', 'auto', 1, 8);
      await store.append(
        ['a', 'b', 'c', 'd'].map((id) => msg('bob', id)),
        LIMITS,
      );
      await store.close(); // applied
      store = await openLmdbStore(opts);
      assert.equal((await store.ack('bob', 'phone', 3)).deleted, 3);
      await store.registerDevice('bob', 'tablet', 'head', 1, 8);
      await store.append([msg('bob', 'e')], LIMITS);
      await store.close(); // not applied: the ack, the device and 'e' live only in the log
      store = await openLmdbStore(opts);
      assert.equal(store.recovery.replayed, 3);
      assert.deepEqual(
        (await store.listDevices('bob')).map((d) => [d.device, d.cursor]),
        [
          ['phone', 3],
          ['tablet', 4],
        ],
      );
      assert.deepEqual(
        (await store.read({ user: 'bob', device: 'phone', afterSeq: 0, limit: 10, now: 2 })).messages.map((m) => m.id),
        ['d', 'e'],
      );
      assert.equal((await store.stats('bob', 2)).pending, 2);
      assert.equal((await store.removeDevice('bob', 'tablet')).removed, true);
      await store.close();
      store = await openLmdbStore({ path: dir, wal: NEVER });
      assert.deepEqual(
        (await store.listDevices('bob')).map((d) => d.device),
        ['phone'],
      );
      await store.close();
      assert.equal((await lmdbHolds(dir, 'bob', [])).messages, 2);
    });
  });

  it('the resident index stays within its limit: reaching it forces an apply', { timeout: 60_000 }, async () => {
    await withTempDir(async (dir) => {
      let applies = 0;
      const store = await openLmdbStore({ path: dir, wal: { applyIntervalMs: 3_600_000, maxResidentMessages: 50, onEvent: (e) => (e === 'applied' ? applies++ : 0) } });
      let peak = 0;
      await Promise.all(
        Array.from({ length: 8 }, async (_, w) => {
          for (let i = 0; i < 60; i++) {
            await store.append([msg(`u${i % 13}`, `w${w}-${i}`)], LIMITS);
            peak = Math.max(peak, store.residentSize().messages);
          }
        }),
      );
      assert.ok(applies >= 4, `the limit forced applies (${applies})`);
      assert.ok(peak <= 100, `at most twice the limit resident (peak ${peak})`);
      await store.close();
    });
  });

  it('segments whose records are applied are deleted', { timeout: 60_000 }, async () => {
    await withTempDir(async (dir) => {
      const store = await openLmdbStore({ path: dir, wal: { applyIntervalMs: 3_600_000, maxResidentMessages: 40, segmentBytes: 2048 } });
      for (let i = 0; i < 400; i++) await store.append([msg('bob', `m${i}`)], LIMITS);
      const segments = readdirSync(join(dir, 'wal')).length;
      assert.ok(segments <= 6, `${segments} segments left of ~${Math.ceil(store.walBytesWritten() / 2048)} written`);
      await store.close();
      const again = await openLmdbStore({ path: dir, wal: NEVER });
      assert.equal((await again.stats('bob', 2)).pending, 400);
      await again.close();
    });
  });

  it("one writer per log: a second open is refused, a dead writer's lock is taken over", async () => {
    await withTempDir(async (dir) => {
      const store = await openLmdbStore({ path: dir, wal: NEVER });
      await assert.rejects(openLmdbStore({ path: dir, wal: NEVER }), (err: unknown) => err instanceof PoboxError && err.code === 'UNAVAILABLE' && /already open/.test(err.message));
      await store.registerDevice('bob', 'phone', 'auto', 1, 8);
      await store.close();
      // A lock file naming a process that no longer runs (as after a SIGKILL), or our own
      // pid left by an earlier life (a restarted container gets the same pid).
      for (const pid of ['2147483646', String(process.pid)]) {
        writeFileSync(join(dir, 'wal', 'LOCK'), pid);
        const again = await openLmdbStore({ path: dir, wal: NEVER });
        assert.equal((await again.listDevices('bob')).length, 1);
        await again.close();
      }
    });
  });

  it('a gap notice the sweeper wrote survives restarts; acks replayed from the log keep or clear it as they did live, and an apply carries it', async () => {
    await withTempDir(async (dir) => {
      const logOnly: LmdbStoreOptions = { path: dir, wal: { ...NEVER, applyOnClose: false } };
      const gapOf = async (s: { read: LmdbStore['read'] }): Promise<unknown> => (await s.read({ user: 'bob', device: 'phone', afterSeq: 0, limit: 10, now: 2000 })).gap;
      const notice = { from: 1, to: 2, count: 2, reasons: ['expired'] };
      let store = await openLmdbStore({ path: dir, wal: NEVER });
      await store.registerDevice('bob', 'phone', 'auto', 1, 8);
      await store.append([{ ...msg('bob', 'a'), expiresAt: 1000 }, { ...msg('bob', 'b'), expiresAt: 1000 }, msg('bob', 'c')], LIMITS);
      assert.equal((await store.sweep(2000, 100)).expired, 2); // written to LMDB under the gate
      assert.deepEqual(await gapOf(store), notice);
      await store.close();
      store = await openLmdbStore(logOnly);
      await store.ack('bob', 'phone', 1); // below `to`: kept
      assert.deepEqual(await gapOf(store), notice);
      await store.close(); // the ack lives only in the log
      store = await openLmdbStore({ path: dir, wal: NEVER }); // replays it, applies on close
      assert.equal(store.recovery.replayed, 1);
      assert.deepEqual(await gapOf(store), notice);
      await store.close();
      store = await openLmdbStore(logOnly);
      assert.equal(store.recovery.replayed, 0, 'applied: LMDB holds the cursor and the notice');
      assert.deepEqual(await gapOf(store), notice);
      await store.ack('bob', 'phone', 2); // reaches `to`: cleared, in the log only
      assert.equal(await gapOf(store), undefined);
      await store.close();
      store = await openLmdbStore(logOnly);
      try {
        assert.equal(store.recovery.replayed, 1);
        assert.equal(await gapOf(store), undefined, 'the replayed ack clears it as the live one did');
      } finally {
        await store.close();
      }
    });
  });

  it("an admin's skip replayed from the log leaves the same notice as live, and the ack of its `to` replayed clears it", async () => {
    await withTempDir(async (dir) => {
      const logOnly: LmdbStoreOptions = { path: dir, wal: { ...NEVER, applyOnClose: false } };
      const gapOf = async (s: { read: LmdbStore['read'] }): Promise<unknown> => (await s.read({ user: 'bob', device: 'phone', afterSeq: 0, limit: 10, now: 2 })).gap;
      const notice = { from: 1, to: 3, count: 2, reasons: ['purged'] };
      let store = await openLmdbStore(logOnly);
      await store.registerDevice('bob', 'phone', 'auto', 1, 8);
      await store.registerDevice('bob', 'laptop', 'oldest', 1, 8);
      await store.append([msg('bob', 'a'), { ...msg('bob', 'b'), toDevice: 'laptop' }, msg('bob', 'c')], LIMITS);
      assert.equal((await store.ack('bob', 'phone', 3, { skip: true })).cursor, 3);
      assert.deepEqual(await gapOf(store), notice);
      await store.close(); // the skip lives only in the log
      store = await openLmdbStore(logOnly);
      assert.deepEqual(await gapOf(store), notice, 'replayed as it was live');
      assert.equal((await store.ack('bob', 'phone', 3)).moved, false);
      assert.equal(await gapOf(store), undefined);
      await store.close();
      store = await openLmdbStore({ path: dir, wal: NEVER }); // replays both, applies on close
      try {
        assert.equal(await gapOf(store), undefined, 'the replayed ack of `to` clears it');
        assert.deepEqual(
          (await store.listDevices('bob')).map((d) => [d.device, d.cursor]),
          [
            ['laptop', 0],
            ['phone', 3],
          ],
        );
      } finally {
        await store.close();
      }
    });
  });

  it('a restart replays the fair-quota counters from the log, and an apply carries them to LMDB', async () => {
    await withTempDir(async (dir) => {
      const share = { ...LIMITS, maxSenderMessages: 2, maxSenderBytes: 1 << 20 };
      const opts: LmdbStoreOptions = { path: dir, wal: { ...NEVER, applyOnClose: false } };
      const store = await openLmdbStore(opts);
      await store.registerDevice('bob', 'phone', 'auto', 1, 8);
      const first = await store.append([msg('bob', 'a'), msg('bob', 'b'), msg('bob', 'c')], share);
      assert.deepEqual(
        first.map((o) => (o.ok ? o.seq : o.error.code)),
        [1, 2, 'SENDER_QUOTA'],
      );
      await store.close();
      const replayed = await openLmdbStore(opts);
      try {
        assert.ok(replayed.recovery.replayed > 0, 'nothing was applied: the log is the only record');
        const [again] = await replayed.append([msg('bob', 'c')], share);
        assert.equal(again && !again.ok && again.error.code, 'SENDER_QUOTA');
        await replayed.ack('bob', 'phone', 1);
      } finally {
        await replayed.close();
      }
      const applied = await openLmdbStore({ path: dir, wal: NEVER }); // replays the ack, then applies on close
      await applied.close();
      const fromLmdb = await openLmdbStore({ path: dir, wal: NEVER });
      try {
        assert.equal(fromLmdb.recovery.replayed, 0, 'everything was applied');
        const out = await fromLmdb.append([msg('bob', 'c'), msg('bob', 'd')], share);
        assert.deepEqual(
          out.map((o) => (o.ok ? o.seq : o.error.code)),
          [3, 'SENDER_QUOTA'],
        );
      } finally {
        await fromLmdb.close();
      }
    });
  });
  it('an import is one log record: a restart replays it whole (messages, dedupe, sender shares, expiry), and an apply carries it to LMDB', async () => {
    await withTempDir(async (dir) => {
      const opts: LmdbStoreOptions = { path: dir, wal: { ...NEVER, applyOnClose: false } };
      let store = await openLmdbStore(opts);
      const before = store.walCounters().records;
      const messages = [2, 5, 6].map((seq) => ({ ...msg('bob', `m${seq}`), seq, expiresAt: seq === 5 ? 100 : 1e15 }));
      const r = await store.restore({ user: 'bob', epoch: 'e-moved', lastSeq: 7, devices: [{ device: 'phone', cursor: 1, registeredAt: 1 }], messages });
      assert.deepEqual(r, { devices: 1, messages: 3, bytes: 3 * 7 });
      assert.equal(store.walCounters().records - before, 1, 'one record');
      await store.close(); // not applied: the import lives only in the log
      store = await openLmdbStore(opts);
      assert.equal(store.recovery.replayed, 1);
      const st = await store.stats('bob', 2);
      assert.deepEqual([st.epoch, st.lastSeq, st.pending, st.pendingBytes, st.devices.map((d) => [d.device, d.cursor])], ['e-moved', 7, 3, 21, [['phone', 1]]]);
      assert.deepEqual(
        (await store.read({ user: 'bob', device: 'phone', afterSeq: 0, limit: 10, now: 2 })).messages.map((m) => [m.seq, m.id]),
        [
          [2, 'm2'],
          [5, 'm5'],
          [6, 'm6'],
        ],
      );
      // Dedupe (a resend is a duplicate), the sender's share (alice holds 3), the next seq.
      const [dup, next, over] = await store.append([msg('bob', 'm6'), msg('bob', 'new'), { ...msg('bob', 'over'), from: 'alice' }], { ...LIMITS, maxSenderMessages: 4 });
      assert.deepEqual(dup && dup.ok && [dup.seq, dup.duplicate], [6, true]);
      assert.deepEqual(next && next.ok && [next.seq, next.duplicate], [8, false]);
      assert.deepEqual(over && !over.ok && over.error.code, 'SENDER_QUOTA');
      // Its expiry entry came along: the sweeper finds m5.
      assert.equal((await store.sweep(200, 10)).expired, 1);
      await store.close();
      store = await openLmdbStore({ path: dir, wal: NEVER });
      assert.equal(((await store.restore({ user: 'bob', epoch: 'e2', lastSeq: 1, devices: [], messages: [] }).catch((e: unknown) => e)) as PoboxError).code, 'CONFLICT');
      await store.close();
      assert.deepEqual(await lmdbHolds(dir, 'bob', ['m2', 'm5', 'm6', 'new']), { messages: 3, dedupe: 3 });
    });
  });
});
