/**
 * Write contention on one mailbox, against DynamoDB Local: two store instances ("gateway
 * nodes") on one table. Node 1 sends a burst to bob while node 2 reads bob's device and
 * acks every message as it appears, and node 2 also sends its own burst to bob. Acks move
 * the device cursor and lower count/bytes on bob's metadata item, the item every send
 * writes too: no send may be refused for that, and nothing may be stored twice, skipped
 * by the reader, or miscounted.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AppendItem, AppendLimits, AppendOutcome } from '../../../src/store/contract.js';
import type { DynamoDbStore } from '../../../src/store/dynamodb/index.js';
import { useDynamoDbLocal } from './local-stores.js';

const PER_STREAM = 120;
const IN_FLIGHT = 6;
const LIMITS: AppendLimits = { maxMailboxMessages: 100_000, maxMailboxBytes: 100_000_000 };

const local = useDynamoDbLocal();
const open = (table: string): Promise<DynamoDbStore> => local.open(table, {}, { sweepShards: 2 });

/** `count` sends to bob from `store`, IN_FLIGHT at a time, one message per append (as live sends arrive). */
async function sendStream(store: DynamoDbStore, prefix: string, refused: string[]): Promise<Map<string, number>> {
  const seqs = new Map<string, number>();
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < PER_STREAM; i = next++) {
      const now = Date.now();
      const item: AppendItem = { id: `${prefix}${i}`, from: prefix, to: 'bob', body: `${prefix}-${i}`, bytes: 10, sentAt: now, expiresAt: now + 600_000 };
      const [out] = await store.append([item], LIMITS);
      if (!out!.ok) refused.push(`${item.id}: ${out!.error.code} ${out!.error.message}`);
      else seqs.set(item.id, out!.seq);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return seqs;
}

describe('dynamodb write contention', () => {
  it('sends to one user from two nodes while that user acks each message are never refused', { timeout: 300_000 }, async () => {
    const table = await local.ddb.newTable();
    const node1 = await open(table);
    const node2 = await open(table);
    await node1.registerDevice('bob', 'phone', 'auto', Date.now(), 10);

    const refused: string[] = [];
    let sending = true;
    const streams = Promise.all([sendStream(node1, 'a', refused), sendStream(node2, 'c', refused)]).finally(() => (sending = false));

    // Node 2 reads bob's phone after the last seq it saw and acks each message singly.
    const received: Array<{ id: string; seq: number }> = [];
    let lastSeen = 0;
    const total = 2 * PER_STREAM;
    const deadline = Date.now() + 240_000;
    try {
      while (received.length < total) {
        assert.ok(Date.now() < deadline, `reader stuck at ${received.length} of ${total} (refused: ${refused.length})`);
        const page = await node2.read({ user: 'bob', device: 'phone', afterSeq: lastSeen, limit: 50, now: Date.now() });
        for (const m of page.messages) {
          assert.equal(m.seq, lastSeen + 1, `the reader saw seq ${m.seq} right after ${lastSeen}: a gap`);
          lastSeen = m.seq;
          received.push({ id: m.id, seq: m.seq });
          const ack = await node2.ack('bob', 'phone', m.seq);
          assert.equal(ack.cursor, m.seq);
        }
        if (page.messages.length === 0) {
          // Every send has answered; what was refused will never appear.
          if (!sending && received.length + refused.length >= total) break;
          await sleep(5); // poll, as a session woken by the bus would
        }
      }
    } finally {
      await streams.catch(() => undefined); // never leave sends running past the test
    }
    const [sentA, sentC] = await streams;

    assert.deepEqual(refused, [], 'no send was refused');
    const stored = new Map([...sentA, ...sentC]);
    assert.equal(stored.size, total);
    const ids = received.map((r) => r.id);
    assert.equal(new Set(ids).size, ids.length, 'every message delivered once');
    for (const r of received) assert.equal(stored.get(r.id), r.seq, `${r.id} delivered with the seq its send returned`);
    assert.deepEqual(
      received.map((r) => r.seq),
      Array.from({ length: total }, (_, i) => i + 1),
    );
    const stats = await node1.stats('bob', Date.now());
    assert.deepEqual([stats.lastSeq, stats.pending, stats.pendingBytes], [total, 0, 0], 'counters exact after every ack');
    // A resend from either node is still recognised after the ack deleted the message.
    const now = Date.now();
    const [dup] = await node1.append([{ id: 'c7', from: 'c', to: 'bob', body: 'c-7', bytes: 10, sentAt: now, expiresAt: now + 600_000 }], LIMITS);
    assert.deepEqual(dup, { ok: true, seq: stored.get('c7'), duplicate: true, epoch: stats.epoch });
  });

  it('a device removed on one node while the other sends to it leaves exact counters', { timeout: 120_000 }, async () => {
    const table = await local.ddb.newTable();
    const node1 = await open(table);
    const node2 = await open(table);
    await node1.registerDevice('bob', 'phone', 'auto', Date.now(), 10);
    await node1.registerDevice('bob', 'tablet', 'oldest', Date.now(), 10);

    // Node 1: every other message is for the tablet only; node 2 removes the tablet mid-stream.
    const outcomes: AppendOutcome[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < 80; i = next++) {
        const now = Date.now();
        const item: AppendItem = { id: `t${i}`, from: 'a', to: 'bob', body: `t-${i}`, bytes: 3 + String(i).length, sentAt: now, expiresAt: now + 600_000 };
        if (i % 2 === 0) item.toDevice = 'tablet';
        outcomes.push((await node1.append([item], LIMITS))[0]!);
      }
    };
    const stream = Promise.all(Array.from({ length: 4 }, worker));
    while (outcomes.length < 20) await sleep(5);
    assert.equal((await node2.removeDevice('bob', 'tablet')).removed, true);
    await stream;

    for (const o of outcomes) if (!o.ok) assert.equal(o.error.code, 'NOT_FOUND', o.error.message); // only tablet sends after the removal
    const visible = [];
    for (let after = 0; ;) {
      const page = await node2.read({ user: 'bob', device: 'phone', afterSeq: after, limit: 100, now: Date.now() });
      visible.push(...page.messages);
      if (!page.more) break;
      after = page.nextAfter;
    }
    assert.equal(visible.length, 40, 'the phone sees exactly the untargeted messages');
    const stats = await node1.stats('bob', Date.now());
    assert.deepEqual(
      [stats.pending, stats.pendingBytes],
      [visible.length, visible.reduce((a, m) => a + m.bytes, 0)],
      'tablet messages, stored before or after the removal read, are not counted',
    );
    await node2.ack('bob', 'phone', stats.lastSeq);
    const end = await node1.stats('bob', Date.now());
    assert.deepEqual([end.pending, end.pendingBytes], [0, 0]);
  });
});
