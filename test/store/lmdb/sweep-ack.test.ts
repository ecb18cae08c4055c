/**
 * An ack racing the sweeper over the same expired message (src/store/lmdb/index.ts,
 * `sweepLmdb`): the message is counted gone exactly once, by the ack or by the sweep,
 * and the mailbox's counts, the sender's share, the gap notice and what a read returns
 * agree with that, live and after a restart that replays the ack over the swept LMDB.
 * The ack is sent at each moment of the sweep the engine lets a test reach: before it,
 * as it takes the gate, when its apply of the log is captured and when that apply
 * committed (the engine's own apply events), and a turn later, while the sweep waits for
 * its own transaction; with the messages still only in the log or already in LMDB. An
 * ack that the gate did not hold back would land in that last window and count an
 * expired message a second time (an engine changed that way fails here, 3 !== 2).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openLmdbStore, type LmdbStore, type WalEvent } from '../../../src/store/lmdb/index.js';
import type { AckOutcome, AppendItem, SweepOutcome } from '../../../src/store/contract.js';
import { PoboxError } from '../../../src/core/errors.js';
import { withTempDir } from '../../support/temp-dir.js';

const LIMITS = { maxMailboxMessages: 100_000, maxMailboxBytes: 1 << 30 };
const NEVER = { applyIntervalMs: 3_600_000, maxResidentMessages: 1_000_000, applyOnClose: false };
const SWEEP_AT = 1_000;
// m1 and m2 expire before SWEEP_AT, m3 does not; the ack covers m1 only.
const MESSAGES: AppendItem[] = [
  { id: 'm1', from: 'alice', to: 'bob', body: 'x', bytes: 10, sentAt: 1, expiresAt: 100 },
  { id: 'm2', from: 'alice', to: 'bob', body: 'x', bytes: 20, sentAt: 1, expiresAt: 100 },
  { id: 'm3', from: 'alice', to: 'bob', body: 'x', bytes: 40, sentAt: 1, expiresAt: 1e15 },
];

type Moment =
  | 'before the sweep'
  | 'as the sweep takes the gate'
  | 'when the sweep has captured its apply'
  | 'when the sweep has committed its apply'
  | 'a turn after the sweep committed its apply';
const MOMENTS: Moment[] = [
  'before the sweep',
  'as the sweep takes the gate',
  'when the sweep has captured its apply',
  'when the sweep has committed its apply',
  'a turn after the sweep committed its apply',
];
const EVENT: Partial<Record<Moment, WalEvent>> = {
  'when the sweep has captured its apply': 'apply',
  'when the sweep has committed its apply': 'applied',
  'a turn after the sweep committed its apply': 'applied',
};

/** Sweep and ack m1 with the ack sent at `moment`; both answers. */
async function race(store: LmdbStore, arm: (hook: (e: WalEvent) => void) => void, moment: Moment): Promise<[SweepOutcome, AckOutcome]> {
  const ack = (): Promise<AckOutcome> => store.ack('bob', 'phone', 1);
  if (moment === 'before the sweep') {
    const acked = ack();
    return [await store.sweep(SWEEP_AT, 100), await acked];
  }
  if (moment === 'as the sweep takes the gate') {
    const swept = store.sweep(SWEEP_AT, 100);
    const acked = ack();
    return [await swept, await acked];
  }
  let acked: Promise<AckOutcome> | undefined;
  let armed = true;
  arm((e) => {
    if (e !== EVENT[moment] || !armed) return;
    armed = false;
    // A turn later the sweep has read its due entries and waits for its transaction.
    if (moment === 'a turn after the sweep committed its apply') setImmediate(() => (acked = ack()));
    else acked = ack();
  });
  const swept = await store.sweep(SWEEP_AT, 100);
  assert.ok(!armed, `the sweep's apply reached '${EVENT[moment]}'`);
  while (!acked) await new Promise((r) => setImmediate(r));
  return [swept, await acked];
}

/** What a device and the stats see of bob's mailbox now. */
async function seen(store: LmdbStore): Promise<{ seqs: number[]; expired: number[]; gapTo: number | undefined; pending: number; pendingBytes: number }> {
  const page = await store.read({ user: 'bob', device: 'phone', afterSeq: 0, limit: 10, now: SWEEP_AT });
  const stats = await store.stats('bob', SWEEP_AT);
  return { seqs: page.messages.map((m) => m.seq), expired: page.expired ?? [], gapTo: page.gap?.to, pending: stats.pending, pendingBytes: stats.pendingBytes };
}

describe('lmdb: an ack racing the sweeper over the same expired message', () => {
  for (const applied of [false, true]) {
    for (const moment of MOMENTS) {
      it(`messages ${applied ? 'in LMDB' : 'only in the log'}, ack ${moment}: counted once, and the counts agree with what is readable`, async () => {
        await withTempDir(async (dir) => {
          let hook: ((e: WalEvent) => void) | undefined;
          let store = await openLmdbStore({ path: dir, wal: { ...NEVER, onEvent: (e) => hook?.(e) } });
          await store.registerDevice('bob', 'phone', 'auto', 1, 8);
          await store.append(MESSAGES, LIMITS);
          if (applied) await store.users(); // runs under the gate: applies the log first
          // Something for the sweep's own apply to write, so its apply events happen.
          await store.append([{ id: 'c1', from: 'alice', to: 'carol', body: 'x', bytes: 1, sentAt: 1, expiresAt: 1e15 }], LIMITS);

          const [swept, acked] = await race(store, (h) => (hook = h), moment);
          hook = undefined;

          assert.equal(acked.cursor, 1);
          assert.equal(swept.expired + acked.deleted, 2, 'm1 and m2 are each counted gone once');
          assert.equal(swept.expiredBytes + acked.deletedBytes, 30);
          // An ack decided before the sweep took the gate is applied before it reads; one sent later waits for it.
          assert.deepEqual([swept.expired, acked.deleted], moment === 'before the sweep' ? [1, 1] : [2, 0]);
          const live = await seen(store);
          assert.deepEqual(live, { seqs: [3], expired: [], gapTo: 2, pending: 1, pendingBytes: 40 }, 'm2 expired unseen: a notice up to 2');
          await store.close();

          // The ack may still be only in the log: replayed over the swept LMDB, it must count the same.
          store = await openLmdbStore({ path: dir, wal: NEVER });
          assert.deepEqual(await seen(store), live);
          // alice's share is m3 alone: with a share of 2, one more is accepted and the next refused.
          const more = await store.append(
            ['n1', 'n2'].map((id): AppendItem => ({ id, from: 'alice', to: 'bob', body: 'x', bytes: 1, sentAt: 2, expiresAt: 1e15 })),
            { ...LIMITS, maxSenderMessages: 2 },
          );
          assert.equal(more[0]!.ok, true);
          assert.ok(!more[1]!.ok && more[1]!.error instanceof PoboxError && more[1]!.error.code === 'SENDER_QUOTA', JSON.stringify(more[1]));
          await store.close();
        });
      });
    }
  }
});
