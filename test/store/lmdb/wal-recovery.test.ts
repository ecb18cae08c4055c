/**
 * The embedded engine after a failed log write (issue 13): on a small tmpfs filled up while
 * applies are held back, so the write-ahead log is what fails (ENOSPC). Every refused call
 * is the typed UNAVAILABLE; once space is freed the engine takes writes again in the same
 * process, with nothing acknowledged lost and nothing refused stored; seqs stay gapless
 * (the cut records' seqs are given again); and a reopen finds a clean log (the cut was
 * made durable, no torn record) holding exactly what was acknowledged.
 *
 * Needs `mount -t tmpfs` (CI runs as root); where mounting is refused the test is skipped
 * with the reason.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PoboxError } from '../../../src/core/errors.js';
import type { AppendItem } from '../../../src/store/contract.js';
import { openLmdbStore, type LmdbStore } from '../../../src/store/lmdb/index.js';
import { mountTmpfs } from '../../support/tmpfs.js';
import { waitFor } from '../../support/wait.js';

const TMPFS_BYTES = 16 * 1024 * 1024;
const LIMITS = { maxMailboxMessages: 100_000, maxMailboxBytes: 1 << 30 };
/** No apply while the disk fills, nor on close: the log is the only writer, and the reopen replays all of it. */
const LOG_ONLY = { applyIntervalMs: 3_600_000, maxResidentMessages: 1_000_000, maxResidentBytes: 1 << 30, segmentBytes: 512 * 1024, applyOnClose: false };
const BODY = 'x'.repeat(32 * 1024);
const msg = (id: string): AppendItem => ({ id, from: 'alice', to: 'bob', body: BODY, bytes: BODY.length, sentAt: 1, expiresAt: 1e15 });

async function readAll(store: LmdbStore): Promise<Array<{ seq: number; id: string }>> {
  const out: Array<{ seq: number; id: string }> = [];
  let after = 0;
  for (;;) {
    const page = await store.read({ user: 'bob', device: 'phone', afterSeq: after, limit: 100, now: 2 });
    out.push(...page.messages.map((m) => ({ seq: m.seq, id: m.id })));
    if (!page.more) return out;
    after = page.nextAfter;
  }
}

/** Four sends at once, so a failed group holds several callers' records. */
async function sendFour(store: LmdbStore, ids: string[]): Promise<Array<{ id: string; ok: boolean; err?: unknown }>> {
  return Promise.all(
    ids.map((id) =>
      store.append([msg(id)], LIMITS).then(
        () => ({ id, ok: true }),
        (err: unknown) => ({ id, ok: false, err }),
      ),
    ),
  );
}

describe('lmdb write-ahead log: a failed write', () => {
  it('refuses UNAVAILABLE, recovers in place once space is freed, loses nothing acknowledged and stores nothing refused', { timeout: 120_000 }, async (t) => {
    const tmpfs = await mountTmpfs(TMPFS_BYTES, 'pobox-wal-full-');
    if ('refused' in tmpfs) {
      t.diagnostic(tmpfs.refused);
      t.skip(tmpfs.refused);
      return;
    }
    const { mnt } = tmpfs;
    const dir = join(mnt, 'data');
    let store: LmdbStore | undefined;
    try {
      store = await openLmdbStore({ path: dir, wal: LOG_ONLY });
      await store.registerDevice('bob', 'phone', 'auto', 1, 8);
      tmpfs.fill('ballast', 1024 * 1024);

      const acked: string[] = [];
      const refused: string[] = [];
      for (let i = 0; refused.length < 8 && i < 2000; i += 4) {
        for (const r of await sendFour(
          store,
          [0, 1, 2, 3].map((k) => `m${i + k}`),
        )) {
          if (r.ok) acked.push(r.id);
          else {
            assert.ok(r.err instanceof PoboxError && r.err.code === 'UNAVAILABLE', `refused with ${String(r.err)}`);
            refused.push(r.id);
          }
        }
      }
      assert.ok(refused.length >= 8, `the disk never filled (${acked.length} acknowledged)`);
      // Still full: whatever the engine is doing (failed, or recovered and failing again),
      // a send is refused with the typed error, never stored.
      const stillFull = await sendFour(store, ['full-a', 'full-b', 'full-c', 'full-d']);
      for (const r of stillFull) {
        assert.equal(r.ok, false, 'nothing fits on the full disk');
        assert.ok(r.err instanceof PoboxError && r.err.code === 'UNAVAILABLE', `refused with ${String(r.err)}`);
      }

      rmSync(join(mnt, 'ballast'));
      // Same process, no reopen: writes are taken again once the engine has recovered.
      const s = store;
      await waitFor(
        async () => {
          const [r] = await sendFour(s, ['after-free']);
          if (r!.ok) return true;
          await new Promise((res) => setTimeout(res, 100));
          return false;
        },
        'a send accepted once space was freed',
        30_000,
      );
      acked.push('after-free');
      assert.ok(store.recoveries > 0, 'the engine recovered in place');
      assert.ok((await sendFour(store, [refused[0]!]))[0]!.ok, 'a refused send, resent with its id, is accepted');
      acked.push(refused[0]!);

      const check = (got: Array<{ seq: number; id: string }>, when: string): void => {
        assert.deepEqual(
          got.map((m) => m.seq),
          got.map((_, k) => k + 1),
          `${when}: seqs 1..n, no gap (the cut records' seqs were given again)`,
        );
        assert.deepEqual(got.map((m) => m.id).sort(), [...acked].sort(), `${when}: exactly what was acknowledged`);
      };
      check(await readAll(store), 'before the reopen');
      t.diagnostic(`${acked.length} acknowledged, ${refused.length} refused while full, ${store.recoveries} recoveries`);
      await store.close();
      store = undefined;

      store = await openLmdbStore({ path: dir, wal: LOG_ONLY });
      assert.equal(store.recovery.stop, 'end', 'the log ends cleanly: the cut was durable, no torn record after it');
      assert.equal(store.recovery.replayed, acked.length + 1, 'the whole log replayed: the registration and every acknowledged send');
      check(await readAll(store), 'after the reopen');
    } finally {
      await store?.close().catch(() => undefined);
      await tmpfs.remove();
    }
  });
});
