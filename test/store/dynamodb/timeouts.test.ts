/**
 * A store that stops answering must not hang pobox: every DynamoDB request has a
 * deadline, faults are retried within a time budget, and then the caller gets
 * UNAVAILABLE. The "store" here is a real TCP listener on loopback that accepts
 * connections and reads requests but never answers, as a frozen DynamoDB would.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { PoboxError } from '../../../src/core/errors.js';
import { openDynamoDbStore } from '../../../src/store/dynamodb/index.js';

let silent: Server;
let endpoint = '';
const sockets = new Set<Socket>();

before(async () => {
  silent = createServer((s) => {
    sockets.add(s);
    s.on('data', () => undefined); // read everything, answer nothing
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const addr = silent.address();
  if (!addr || typeof addr === 'string') throw new Error('no port');
  endpoint = `http://127.0.0.1:${addr.port}`;
});
after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => silent.close(() => resolve()));
});

const LIMITS = { maxMailboxMessages: 100, maxMailboxBytes: 1 << 20 };

describe('dynamodb request timeouts', () => {
  it('a send to a store that never answers fails with UNAVAILABLE within the budgets', { timeout: 30_000 }, async () => {
    const store = await openDynamoDbStore({ engine: 'dynamodb', table: 'frozen', endpoint, requestTimeoutMs: 300, connectTimeoutMs: 300, faultBudgetMs: 1_000 });
    const now = Date.now();
    const started = Date.now();
    const [out] = await store.append([{ id: 'm1', from: 'a', to: 'bob', body: 'x', bytes: 1, sentAt: now, expiresAt: now + 60_000 }], LIMITS);
    const took = Date.now() - started;
    assert.equal(out?.ok, false);
    assert.equal(out && !out.ok ? out.error.code : '', 'UNAVAILABLE');
    // Budget 1 s plus one request timeout and a backoff pause; far from hanging.
    assert.ok(took < 4_000, `answered after ${took} ms`);
    assert.ok(sockets.size > 0 || took >= 300, 'the requests really reached the silent store');
    await store.close();
  });

  it('reads, acks and stats fail with UNAVAILABLE too', { timeout: 30_000 }, async () => {
    const store = await openDynamoDbStore({ engine: 'dynamodb', table: 'frozen', endpoint, requestTimeoutMs: 200, faultBudgetMs: 500 });
    for (const call of [
      () => store.read({ user: 'bob', device: 'phone', afterSeq: 0, limit: 10, now: Date.now() }),
      () => store.ack('bob', 'phone', 1),
      () => store.stats('bob', Date.now()),
    ]) {
      const started = Date.now();
      await assert.rejects(call(), (err: unknown) => err instanceof PoboxError && err.code === 'UNAVAILABLE');
      assert.ok(Date.now() - started < 3_000);
    }
    await store.close();
  });
});
