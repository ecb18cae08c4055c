/**
 * Delivery receipts at the post office: one per recipient device that acks a message
 * sent with `receipt`, stored in the sender's mailbox from the system sender, stored
 * once however often the ack is repeated.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PostOffice } from '../../src/postoffice/post-office.js';
import { enableReceipts, parseReceipt, receiptId, RECEIPT_SENDER, type ReceiptOutcome } from '../../src/postoffice/receipts.js';
import { openLmdbStore } from '../../src/store/lmdb/index.js';
import { ManualClock } from '../ops/helpers.js';
import { tempDir } from '../support/temp-dir.js';

async function setup(config: Record<string, unknown> = {}) {
  const dir = tempDir();
  const clock = new ManualClock();
  const po = new PostOffice({ store: await openLmdbStore({ path: dir.path }), clock, sweeper: false, config });
  const outcomes: ReceiptOutcome[] = [];
  const off = enableReceipts(po, { onOutcome: (o) => outcomes.push(o) });
  return {
    po,
    clock,
    outcomes,
    off,
    close: async () => {
      await po.close();
      await dir.remove();
    },
  };
}

test('each recipient device ack puts one receipt into the sender mailbox', async () => {
  const env = await setup();
  try {
    const { po, clock } = env;
    await po.registerDevice('alice', 'web');
    await po.registerDevice('bob', 'phone');
    await po.registerDevice('bob', 'laptop');
    await po.send({ from: 'alice', to: 'bob', id: 'no-receipt', body: 'a' });
    const want = await po.send({ from: 'alice', to: 'bob', id: 'wants-receipt', body: 'b', receipt: true });
    await po.send({ from: 'carol', to: 'bob', id: 'carol-too', body: 'c', receipt: true });
    await po.send({ from: 'alice', to: 'bob', id: 'later', body: 'd', receipt: true }); // not acked below
    clock.advance(500);

    await po.ack('bob', 'phone', 3);
    let page = await po.read('alice', 'web', 0, 100);
    assert.equal(page.messages.length, 1);
    const m = page.messages[0]!;
    assert.equal(m.from, RECEIPT_SENDER);
    assert.equal(m.id, receiptId('bob', 'phone', want.epoch, want.seq));
    assert.deepEqual(JSON.parse(m.body as string), { type: 'receipt', id: 'wants-receipt', seq: want.seq, to: 'bob', device: 'phone', ackedAt: clock.now() });
    assert.deepEqual(parseReceipt(m), JSON.parse(m.body as string));
    assert.equal(m.receipt, undefined, 'a receipt never asks for a receipt');
    assert.equal(await po.read('carol', 'x', 0, 10).catch(() => null), null, 'carol has no device yet');
    assert.equal((await po.stats('carol')).pending, 1, 'carol got hers too');

    // The same ack again, and an ack that does not move: nothing new.
    await po.ack('bob', 'phone', 3);
    await po.ack('bob', 'phone', 2);
    // The laptop acks: a second receipt for alice's message, naming the laptop.
    await po.ack('bob', 'laptop', 3);
    page = await po.read('alice', 'web', 0, 100);
    assert.deepEqual(
      page.messages.map((x) => JSON.parse(x.body as string).device),
      ['phone', 'laptop'],
    );
    assert.equal((await po.stats('carol')).pending, 2);
    assert.deepEqual(env.outcomes, ['stored', 'stored', 'stored', 'stored']);
  } finally {
    await env.close();
  }
});

test('receipts are idempotent: a replayed ack range stores nothing twice', async () => {
  const env = await setup();
  try {
    const { po } = env;
    await po.registerDevice('bob', 'phone');
    for (let i = 1; i <= 40; i++) await po.send({ from: 'alice', to: 'bob', id: `m${i}`, body: `n${i}`, receipt: i % 2 === 0 });
    // Two racing acks of overlapping ranges: both read before either moves the cursor.
    await Promise.all([po.ack('bob', 'phone', 30), po.ack('bob', 'phone', 40)]);
    const s = await po.stats('alice');
    assert.equal(s.pending, 20);
    assert.equal(env.outcomes.filter((o) => o === 'stored').length, 20);
    const page = await po.registerDevice('alice', 'web', 'oldest').then(() => po.read('alice', 'web', 0, 100));
    assert.deepEqual(
      page.messages.map((m) => parseReceipt(m)!.id),
      Array.from({ length: 20 }, (_, i) => `m${(i + 1) * 2}`),
    );
  } finally {
    await env.close();
  }
});

test('a targeted message gets a receipt only from its device; a full sender mailbox drops the receipt, not the ack', async () => {
  const env = await setup({ limits: { maxMailboxMessages: 1 } });
  try {
    const { po } = env;
    await po.registerDevice('bob', 'phone');
    await po.registerDevice('bob', 'laptop');
    await po.send({ from: 'alice', to: 'bob', toDevice: 'laptop', id: 't', body: 'only laptop', receipt: true });
    await po.ack('bob', 'phone', 1);
    assert.equal((await po.stats('alice')).pending, 0);
    await po.ack('bob', 'laptop', 1);
    assert.equal((await po.stats('alice')).pending, 1);

    // alice's mailbox (limit 1) is full now: the next receipt is dropped, the ack still lands.
    await po.send({ from: 'alice', to: 'bob', id: 'u', body: 'x', receipt: true });
    const r = await po.ack('bob', 'phone', 2);
    assert.equal(r.cursor, 2);
    assert.deepEqual(env.outcomes, ['stored', 'dropped']);
  } finally {
    await env.close();
  }
});

test('an ack that would fail anyway fails the same way with receipts on', async () => {
  const env = await setup();
  try {
    const { po } = env;
    await po.registerDevice('bob', 'phone');
    await po.send({ from: 'alice', to: 'bob', id: '1', body: 'x', receipt: true });
    await assert.rejects(po.ack('bob', 'phone', 5), { code: 'BAD_REQUEST' });
    await assert.rejects(po.ack('bob', 'ghost', 1), { code: 'NOT_FOUND' });
    assert.equal((await po.stats('alice')).pending, 0);
    env.off();
    await po.ack('bob', 'phone', 1);
    assert.equal((await po.stats('alice')).pending, 0, 'turned off: no receipt');
  } finally {
    await env.close();
  }
});
