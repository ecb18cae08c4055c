/**
 * DynamoDB failing under the engine (throttling and 500s before a request is applied,
 * and 500s after it was applied, the ambiguous case): every send either resolves, and
 * then the message is stored once at that seq, or fails with UNAVAILABLE; a resend of a
 * failed one stores it at most once; acks under faults keep the counts exact.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PoboxError } from '../../../src/core/errors.js';
import { PostOffice } from '../../../src/postoffice/post-office.js';
import type { StoredMessage } from '../../../src/core/types.js';
import { openDynamoDbStore } from '../../../src/store/dynamodb/index.js';
import { localClient } from '../../../tools/dynamodb-local.js';
import { injectFaults } from './fault-injection.js';
import { useDynamoDbLocal } from './local-stores.js';

const local = useDynamoDbLocal();

const USERS = ['ann', 'bob', 'cat', 'dan'];

async function readAll(po: PostOffice, user: string, device: string): Promise<StoredMessage[]> {
  const out: StoredMessage[] = [];
  let afterSeq = 0;
  for (;;) {
    const page = await po.read(user, device, afterSeq, 500);
    out.push(...page.messages);
    if (!page.more) return out;
    afterSeq = page.nextAfter;
  }
}

describe('dynamodb under injected faults', () => {
  it('loses no acknowledged message; what could not be stored is UNAVAILABLE', { timeout: 180_000 }, async () => {
    const table = await local.ddb.newTable();
    const client = localClient(local.ddb.endpoint);
    const faults = injectFaults(client, { before: 0, after: 0 });
    // Few attempts, short waits: some sends must run out of retries. Only faults count
    // against maxAttempts (contention between the racing batches has a time budget), so
    // two attempts make exhausted retries likely: about 1 request in 10 here.
    const store = await openDynamoDbStore(
      { engine: 'dynamodb', table, endpoint: local.ddb.endpoint, sweepShards: 2 },
      { client, retry: { maxAttempts: 2, baseDelayMs: 2, maxDelayMs: 20 } },
    );
    const po = new PostOffice({ store, sweeper: false });
    for (const u of USERS) await po.registerDevice(u, 'phone');

    faults.set({ before: 0.25, after: 0.1 });
    const acked = new Map<string, { user: string; seq: number }>();
    const failed: Array<{ user: string; id: string }> = [];
    for (let wave = 0; wave < 12; wave++) {
      await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const user = USERS[(wave + i) % USERS.length]!;
          const id = `w${wave}-${i}`;
          try {
            const r = await po.send({ to: user, from: 'sender', id, body: `body ${id}` });
            acked.set(id, { user, seq: r.seq });
          } catch (err) {
            assert.ok(err instanceof PoboxError, String(err));
            assert.equal(err.code, 'UNAVAILABLE', err.message);
            failed.push({ user, id });
          }
        }),
      );
    }
    assert.ok(faults.stats.failedBefore > 0 && faults.stats.failedAfter > 0, JSON.stringify(faults.stats));
    assert.ok(acked.size > 0, 'some sends got through');
    assert.ok(failed.length > 0, `some sends ran out of retries (${JSON.stringify(faults.stats)})`);

    // Acks under faults: each either moves the cursor or fails with UNAVAILABLE.
    for (const u of USERS) {
      await po.ack(u, 'phone', 3).catch((err: unknown) => assert.equal((err as PoboxError).code, 'UNAVAILABLE'));
    }

    faults.off();
    for (const u of USERS) await po.registerDevice(u, 'probe', 'oldest');
    const stored = new Map<string, StoredMessage>();
    for (const u of USERS) {
      const msgs = await readAll(po, u, 'probe');
      const seqs = msgs.map((m) => m.seq);
      assert.deepEqual(
        seqs,
        [...seqs].sort((a, b) => a - b),
        'in seq order',
      );
      for (const m of msgs) {
        assert.ok(!stored.has(m.id), `${m.id} stored once`);
        stored.set(m.id, m);
      }
    }
    for (const [id, a] of acked) {
      const cursor = (await po.listDevices(a.user)).find((d) => d.device === 'phone')!.cursor;
      if (a.seq <= cursor) continue; // acked by every device that existed then, so deleted
      const m = stored.get(id);
      assert.ok(m, `acknowledged ${id} (seq ${a.seq}) is stored`);
      assert.equal(m.seq, a.seq);
      assert.equal(m.body, `body ${id}`);
    }
    // Counts agree with what is really there (nothing counted twice or lost from the quota).
    for (const u of USERS) {
      const visible = (await readAll(po, u, 'phone')).length;
      assert.equal((await po.stats(u)).pending, visible, `pending of ${u}`);
    }
    // A resend of each failed send stores it at most once (some were applied before the fault).
    for (const f of failed) {
      const r = await po.send({ to: f.user, from: 'sender', id: f.id, body: `body ${f.id}` });
      const cursor = (await po.listDevices(f.user)).find((d) => d.device === 'phone')!.cursor;
      if (!r.duplicate) assert.ok(!stored.has(f.id), `${f.id} was not stored before`);
      else if (r.seq > cursor) assert.equal(stored.get(f.id)?.seq, r.seq, `${f.id} was stored at that seq`);
    }
    await po.close();
    client.destroy();
  });
});
