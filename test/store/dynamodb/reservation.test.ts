/**
 * The reservation protocol with a real second process (test/dynamodb/reserve-child.ts)
 * stopped between reserving a seq and writing its message, against DynamoDB Local:
 *
 * - killed there (SIGKILL): the seq stays a hole for good. A reader waits for it only
 *   for the lease, then closes it with a tombstone, gives back what the reservation
 *   counted, and delivers what came after: it never stalls for good.
 * - held there while a reader closes the hole, then let go: the late writer's put finds
 *   the tombstone, it takes a new seq, and the reader, reading on after what it saw,
 *   gets the message: nothing the writer was told is stored is ever skipped.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import type { StoredMessage } from '../../../src/core/types.js';
import type { DynamoDbStore } from '../../../src/store/dynamodb/index.js';
import { itemKey, messageSk } from '../../../src/store/dynamodb/keys.js';
import { useDynamoDbLocal } from './local-stores.js';

const CHILD = fileURLToPath(new URL('./reserve-child.ts', import.meta.url));
const LIMITS = { maxMailboxMessages: 1000, maxMailboxBytes: 1 << 20 };
const LEASE_MS = 1500;

const children: ChildProcessWithoutNullStreams[] = [];
// Registered first, so it runs before the stores close and DynamoDB Local stops.
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});
const local = useDynamoDbLocal();
const open = (table: string): Promise<DynamoDbStore> => local.open(table, { holeLeaseMs: LEASE_MS });

/** Start the child sender; resolves with it and an iterator over its stdout lines. */
function child(table: string, user: string, id: string): { proc: ChildProcessWithoutNullStreams; line: () => Promise<string> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', CHILD, local.ddb.endpoint, table, user, id], { stdio: 'pipe' });
  children.push(proc);
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  return {
    proc,
    line: async () => {
      const r = await lines.next();
      if (r.done) throw new Error(`child ended without a line: ${stderr}`);
      return r.value;
    },
  };
}

async function send(store: DynamoDbStore, user: string, id: string): Promise<number> {
  const now = Date.now();
  const [out] = await store.append([{ id, from: 'parent', to: user, body: `body of ${id}`, bytes: `body of ${id}`.length, sentAt: now, expiresAt: now + 600_000 }], LIMITS);
  assert.ok(out?.ok, JSON.stringify(out));
  return out.seq;
}

/** Everything after `afterSeq`, page by page as a session reads (a page may end short of a seq still being written). */
async function readAfter(store: DynamoDbStore, user: string, afterSeq: number): Promise<StoredMessage[]> {
  const out: StoredMessage[] = [];
  for (let after = afterSeq; ;) {
    const page = await store.read({ user, device: 'phone', afterSeq: after, limit: 100, now: Date.now() });
    out.push(...page.messages);
    if (!page.more) return out;
    assert.ok(page.nextAfter > after, 'a page with more makes progress');
    after = page.nextAfter;
  }
}

async function rawItem(table: string, user: string, seq: number): Promise<Record<string, unknown> | undefined> {
  return (await local.ddb.client.send(new GetItemCommand({ TableName: table, Key: itemKey(user, messageSk(seq)), ConsistentRead: true }))).Item;
}

describe('dynamodb: a writer stopped between reserving a seq and writing its message', () => {
  it('killed there: readers close the hole after the lease and deliver what follows; counters stay exact', { timeout: 120_000 }, async () => {
    const table = await local.ddb.newTable();
    const store = await open(table);
    await store.registerDevice('bob', 'phone', 'auto', Date.now(), 10);
    const c = child(table, 'bob', 'lost');
    assert.equal(await c.line(), 'R 1', 'the child reserved seq 1 and stopped');
    c.proc.kill('SIGKILL');
    await new Promise((resolve) => c.proc.once('exit', resolve));

    assert.equal(await send(store, 'bob', 'after'), 2);
    const got = await readAfter(store, 'bob', 0);
    assert.deepEqual(
      got.map((m) => [m.seq, m.id]),
      [[2, 'after']],
      'the reader was not stuck behind the dead seq',
    );
    const tomb = await rawItem(table, 'bob', 1);
    assert.deepEqual(tomb?.tomb, { BOOL: true }, 'seq 1 is closed with a tombstone');
    const stats = await store.stats('bob', Date.now());
    assert.deepEqual([stats.pending, stats.pendingBytes], [1, 'body of after'.length], 'what the dead reservation counted was given back');
    // The id was never stored: sending it again stores it, after.
    assert.equal(await send(store, 'bob', 'lost'), 3);
    assert.deepEqual(
      (await readAfter(store, 'bob', 2)).map((m) => m.id),
      ['lost'],
    );
  });

  it('held there while a reader closes its seq: the late write takes a new seq and the reader gets it', { timeout: 120_000 }, async () => {
    const table = await local.ddb.newTable();
    const store = await open(table);
    await store.registerDevice('bob', 'phone', 'auto', Date.now(), 10);
    assert.equal(await send(store, 'bob', 'first'), 1);
    const c = child(table, 'bob', 'late');
    assert.equal(await c.line(), 'R 2');
    assert.equal(await send(store, 'bob', 'next'), 3);

    const seen = await readAfter(store, 'bob', 0);
    assert.deepEqual(
      seen.map((m) => m.id),
      ['first', 'next'],
    );
    assert.deepEqual((await rawItem(table, 'bob', 2))?.tomb, { BOOL: true });
    const lastSeen = seen[seen.length - 1]!.seq;
    await store.ack('bob', 'phone', lastSeen);

    c.proc.stdin.write('go\n');
    const done = await c.line();
    assert.equal(done, 'D ok 4', 'the late writer found its seq closed and took the next one');
    const later = await readAfter(store, 'bob', lastSeen);
    assert.deepEqual(
      later.map((m) => [m.seq, m.id, m.body]),
      [[4, 'late', 'body of late']],
      'reading on after what it saw, the reader gets the late message',
    );
    const stats = await store.stats('bob', Date.now());
    assert.deepEqual([stats.pending, stats.pendingBytes], [1, 'body of late'.length]);
  });
});
