/**
 * The wake-up hook on two nodes over the Redis bus: presence and the once-per-interval
 * limit are cluster-wide. Two servers in one process share one store and the machine's
 * Redis (127.0.0.1:6379) under a key prefix of their own.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { openLmdbStore } from '../../src/store/lmdb/index.js';
import { startOpsServer, type OpsServer } from './server-helpers.js';
import { startReceiver, waitFor } from './helpers.js';
import { tempDir } from '../support/temp-dir.js';
import { RawClient } from '../support/raw-client.js';

test('a user connected to another node is not woken; one call per interval across nodes', async () => {
  const receiver = await startReceiver();
  const calls = (): Array<{ user: string }> => receiver.bodies<{ user: string }>();
  const prefix = `pobox-test-${randomBytes(4).toString('hex')}:`;
  const bus = `redis://127.0.0.1:6379/?prefix=${prefix}`;
  const hook = { url: receiver.url, intervalMs: 60_000 };
  const dir = tempDir();
  const store = await openLmdbStore({ path: dir.path });
  const servers: OpsServer[] = [];
  const clients: RawClient[] = [];
  const redis = new Redis('redis://127.0.0.1:6379');
  try {
    const a = await startOpsServer({ bus, wakeupHook: hook }, { store });
    servers.push(a);
    const b = await startOpsServer({ bus, wakeupHook: hook }, { store });
    servers.push(b);
    assert.ok(a.server.ops.redisPresence && b.server.ops.redisPresence);

    // bob is connected to node A; a message stored through node B does not wake him.
    const bob = await RawClient.session(a.server.wsUrl, await a.token('bob', 'phone'));
    clients.push(bob);
    await waitFor(async () => (await b.server.ops.redisPresence!.connectedDevices('bob')).includes('phone'), 'B sees bob online');
    await b.server.postOffice.send({ from: 'alice', to: 'bob', id: 'm1', body: 'hi' });
    await b.server.ops.wakeupHook!.idle();
    assert.equal(calls().length, 0);

    // bob leaves; node B wakes him once; node A, within the interval, does not call again.
    await bob.close();
    await waitFor(async () => (await b.server.ops.redisPresence!.connectedDevices('bob')).length === 0, 'B sees bob offline');
    await b.server.postOffice.send({ from: 'alice', to: 'bob', id: 'm2', body: 'hi again' });
    await b.server.ops.wakeupHook!.idle();
    assert.deepEqual(
      calls().map((c) => c.user),
      ['bob'],
    );
    await a.server.postOffice.send({ from: 'alice', to: 'bob', id: 'm3', body: 'and again' });
    await a.server.ops.wakeupHook!.idle();
    assert.equal(calls().length, 1);
    const m = (await a.get('/metrics')).text;
    assert.match(m, /pobox_wakeup_hook_total\{outcome="throttled"\} 1/);
  } finally {
    for (const c of clients) await c.close();
    for (const s of servers) await s.close();
    await store.close();
    await dir.remove();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
    await receiver.close();
  }
});
