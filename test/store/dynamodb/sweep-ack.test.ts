/**
 * The sweeper racing an ack, or another node's sweeper, over one message that expired
 * behind a live one (src/store/dynamodb/sweep.ts, sweepUser): the message is counted gone
 * exactly once, and the mailbox's counts, the sender's share and what the devices read
 * agree with that. The interleaving is forced on a real SDK client talking to DynamoDB
 * Local: a middleware holds the sweeping node's meta write (its UpdateItem, or the
 * TransactWriteItems that carries it) until the other node's ack or sweep has landed.
 *
 * bob has two devices; m1 is for both and lives on, m2 is for the phone only and expires.
 * The laptop, still at 0, keeps the floor below m2, so the sweeper turns m2 into a
 * tombstone. The ack comes from a node that read m2 before the sweep, so it counts m2
 * without reading again. When the sweeper wrote the tombstone before its meta update,
 * that ack landed in between, failed the update (`ver`), and the retry counted m2 again
 * (sweep 1 + ack 1), and so did a second sweeper's retry.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { PoboxError } from '../../../src/core/errors.js';
import type { AppendItem, AppendLimits } from '../../../src/store/contract.js';
import type { DynamoDbStore } from '../../../src/store/dynamodb/index.js';
import { MAX_TOMBSTONES_PER_VISIT } from '../../../src/store/dynamodb/sweep.js';
import { localClient } from '../../../tools/dynamodb-local.js';
import { useDynamoDbLocal } from './local-stores.js';

const T = { timeout: 120_000 };
const local = useDynamoDbLocal();

const LIMITS: AppendLimits = { maxMailboxMessages: 1000, maxMailboxBytes: 1 << 20 };
const SWEEP_AT = 1_000;
const M1: AppendItem = { id: 'm1', from: 'alice', to: 'bob', body: 'x'.repeat(40), bytes: 40, sentAt: 1, expiresAt: 1e15 };
const M2: AppendItem = { id: 'm2', from: 'alice', to: 'bob', toDevice: 'phone', body: 'y'.repeat(10), bytes: 10, sentAt: 1, expiresAt: 100 };

/** Where the sweeping node's request is held: its first write of any kind, or the one that carries its meta update. */
type Moment = 'first write' | 'meta write';
const HELD: Record<Moment, readonly string[]> = {
  'first write': ['PutItemCommand', 'UpdateItemCommand', 'TransactWriteItemsCommand'],
  'meta write': ['UpdateItemCommand', 'TransactWriteItemsCommand'],
};

/** Holds the first request of `ops` sent through `client` once armed, until released. */
function holdWrite(client: DynamoDBClient): { arm(moment: Moment): Promise<void>; release(): void } {
  let ops: readonly string[] | undefined;
  let reached: () => void = () => {};
  let release: () => void = () => {};
  const released = new Promise<void>((r) => (release = r));
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const op = (context as { commandName?: string }).commandName ?? '';
      if (ops?.includes(op)) {
        ops = undefined;
        reached();
        await released;
      }
      return next(args);
    },
    { step: 'initialize', name: 'holdWrite' },
  );
  return {
    arm(moment) {
      ops = HELD[moment];
      return new Promise<void>((r) => (reached = r));
    },
    release,
  };
}

/** What bob's devices and the stats show now. */
async function seen(store: DynamoDbStore) {
  const laptop = await store.read({ user: 'bob', device: 'laptop', afterSeq: 0, limit: 10, now: SWEEP_AT });
  const phone = await store.read({ user: 'bob', device: 'phone', afterSeq: 0, limit: 10, now: SWEEP_AT });
  const stats = await store.stats('bob', SWEEP_AT);
  return { laptop: laptop.messages.map((m) => m.seq), phone: phone.messages.map((m) => m.seq), pending: stats.pending, pendingBytes: stats.pendingBytes };
}

/** alice's share is m1 alone: with a share of 2 messages, one more is accepted and the next refused. */
async function assertAliceHoldsOne(store: DynamoDbStore): Promise<void> {
  const more = await store.append(
    ['n1', 'n2'].map((id): AppendItem => ({ id, from: 'alice', to: 'bob', body: 'z', bytes: 1, sentAt: 2, expiresAt: 1e15 })),
    { ...LIMITS, maxSenderMessages: 2 },
  );
  assert.equal(more[0]!.ok, true, JSON.stringify(more[0]));
  assert.ok(!more[1]!.ok && more[1]!.error instanceof PoboxError && more[1]!.error.code === 'SENDER_QUOTA', JSON.stringify(more[1]));
}

/** A table with bob's two devices, m1 and m2, and three nodes: `sweeper` with a holdable client. */
async function setup() {
  const table = await local.ddb.newTable();
  const client = localClient(local.ddb.endpoint);
  const hold = holdWrite(client);
  const sweeper = await local.open(table, { client });
  const other = await local.open(table);
  const reader = await local.open(table);
  await other.registerDevice('bob', 'phone', 'auto', 1, 8);
  await other.registerDevice('bob', 'laptop', 'auto', 1, 8);
  const sent = await other.append([M1, M2], LIMITS);
  assert.deepEqual(
    sent.map((s) => s.ok && s.seq),
    [1, 2],
  );
  await sweeper.stats('bob', 0); // the sweeper's node has checked the table's layout: its next write is the sweep's
  // The acking node reads m2 while it is live: it remembers it, and acks later without a read.
  const page = await reader.read({ user: 'bob', device: 'phone', afterSeq: 0, limit: 10, now: 50 });
  assert.deepEqual(
    page.messages.map((m) => m.seq),
    [1, 2],
  );
  return { sweeper, other, reader, hold };
}

/** After the race: m1 pending for both devices (the phone's too, unless it acked), alice's share m1 alone. */
async function assertCountedOnce(store: DynamoDbStore, phoneAcked: boolean): Promise<void> {
  assert.deepEqual(await seen(store), { laptop: [1], phone: phoneAcked ? [] : [1], pending: 1, pendingBytes: 40 });
  await assertAliceHoldsOne(store);
}

describe('dynamodb sweeper: an expired message behind a live one is counted gone once', () => {
  for (const moment of ['first write', 'meta write'] as const) {
    it(`an ack computed before the sweep lands at the sweep's ${moment}: counted once, by the ack`, T, async () => {
      const { sweeper, reader, hold } = await setup();
      const held = hold.arm(moment);
      const sweeping = sweeper.sweep(SWEEP_AT, 100);
      await held;
      const readsBefore = reader.capacity().readUnits;
      const acked = await reader.ack('bob', 'phone', 2);
      assert.equal(reader.capacity().readUnits, readsBefore, 'the ack was computed from the earlier read');
      hold.release();
      const swept = await sweeping;
      assert.deepEqual([swept.expired, swept.expiredBytes, acked.deleted, acked.deletedBytes], [0, 0, 1, 10]);
      await assertCountedOnce(reader, true);
    });

    it(`another node sweeps the mailbox at this sweep's ${moment}: counted once`, T, async () => {
      const { sweeper, other, reader, hold } = await setup();
      const held = hold.arm(moment);
      const sweeping = sweeper.sweep(SWEEP_AT, 100);
      await held;
      const first = await other.sweep(SWEEP_AT, 100);
      hold.release();
      const second = await sweeping;
      assert.deepEqual([first.expired + second.expired, first.expiredBytes + second.expiredBytes], [1, 10]);
      // Nobody acked m2: the phone is told it expired unseen.
      const phone = await reader.read({ user: 'bob', device: 'phone', afterSeq: 0, limit: 10, now: SWEEP_AT });
      assert.deepEqual(phone.gap && [phone.gap.from, phone.gap.to, phone.gap.count], [2, 2, 1]);
      await assertCountedOnce(reader, false);
    });
  }

  it('an ack computed before the sweep lands after it: counted once, by the sweep (the ack computes again)', T, async () => {
    const { sweeper, reader } = await setup();
    const swept = await sweeper.sweep(SWEEP_AT, 100);
    const acked = await reader.ack('bob', 'phone', 2);
    assert.deepEqual([swept.expired, swept.expiredBytes, acked.deleted, acked.deletedBytes], [1, 10, 0, 0]);
    // The phone acked past the notice the sweep left it (m2 expired unseen): the notice went with the ack.
    const phone = await reader.read({ user: 'bob', device: 'phone', afterSeq: 2, limit: 10, now: SWEEP_AT });
    assert.equal(phone.gap, undefined);
    await assertCountedOnce(reader, true);
  });

  it('more tombstones than one transaction holds: the visit stops at its limit and the next one goes on', T, async () => {
    const table = await local.ddb.newTable();
    const store = await local.open(table);
    await store.registerDevice('bob', 'phone', 'auto', 1, 8);
    const n = MAX_TOMBSTONES_PER_VISIT + 5;
    const expiring = Array.from({ length: n }, (_, i): AppendItem => ({ ...M2, id: `e${i}`, toDevice: undefined, bytes: 1, body: 'e' }));
    const sent = await store.append([M1, ...expiring], LIMITS);
    assert.ok(sent.every((s) => s.ok));
    const first = await store.sweep(SWEEP_AT, 1000);
    assert.deepEqual([first.expired, first.more], [MAX_TOMBSTONES_PER_VISIT, true]);
    const second = await store.sweep(SWEEP_AT, 1000);
    assert.deepEqual([second.expired, second.more], [5, false]);
    const page = await store.read({ user: 'bob', device: 'phone', afterSeq: 0, limit: 10, now: SWEEP_AT });
    assert.deepEqual(
      page.messages.map((m) => m.seq),
      [1],
    );
    assert.deepEqual(page.gap && [page.gap.from, page.gap.to, page.gap.count], [2, n + 1, n]);
    const stats = await store.stats('bob', SWEEP_AT);
    assert.deepEqual([stats.pending, stats.pendingBytes], [1, 40]);
  });
});
