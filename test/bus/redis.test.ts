/**
 * The Redis bus against real Redis servers: the machine's shared one (each test in its
 * own channel prefix) for pub/sub and ref-counting, and a private redis-server the
 * test stops, restarts and freezes for outages.
 */
import assert from 'node:assert/strict';
import { after, afterEach, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createRedisBus, openRedisBus, RedisBus } from '../../src/bus/redis.js';
import type { Wake } from '../../src/bus/contract.js';
import type { StoredMessage } from '../../src/core/types.js';
import { PoboxError } from '../../src/core/errors.js';
import { startRedisServer, type RedisServer } from '../../tools/redis-server.js';
import { SHARED_REDIS, TcpRelay, uniquePrefix, waitFor, WakeLog } from './bus-helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

const admin = new Redis(SHARED_REDIS, { lazyConnect: true });
after(async () => {
  await admin.quit().catch(() => admin.disconnect());
});

/** Fast reconnects and pings so outage tests settle quickly; behaviour is the same as the defaults. */
const FAST = { reconnectMaxDelayMs: 100, pingIntervalMs: 200, commandTimeoutMs: 500, connectTimeoutMs: 5000 } as const;

async function bus(url: string, prefix: string, extra: Partial<Parameters<typeof openRedisBus>[0]> = {}): Promise<RedisBus> {
  const b = await openRedisBus({ url, prefix, ...FAST, ...extra });
  cleanups.push(() => b.close());
  return b;
}

function message(user: string, seq: number, body: string): StoredMessage {
  return { seq, id: `m${seq}`, from: 'alice', to: user, body, bytes: Buffer.byteLength(body), sentAt: 1, expiresAt: 2 };
}

async function numsub(client: Redis, channel: string): Promise<number> {
  const r = (await client.pubsub('NUMSUB', channel)) as [string, number];
  return Number(r[1]);
}

async function channels(client: Redis, prefix: string): Promise<string[]> {
  return ((await client.pubsub('CHANNELS', `${prefix}*`)) as string[]).sort();
}

describe('RedisBus on the shared Redis', () => {
  it('delivers a publish from one bus to a subscriber on another, inlining only small messages', async () => {
    const prefix = uniquePrefix();
    const a = await bus(SHARED_REDIS, prefix);
    const b = await bus(SHARED_REDIS, prefix);
    assert.equal(a.healthy(), true);
    const log = new WakeLog();
    await a.subscribe('bob', log.handler);

    const small = message('bob', 1, 'hi bob');
    await b.publish({ user: 'bob', epoch: 'e1', seq: 1, message: small });
    const w1 = await log.waitSeq(1);
    assert.deepEqual(w1, { user: 'bob', epoch: 'e1', seq: 1, message: small });

    const big = message('bob', 2, 'x'.repeat(5000));
    await b.publish({ user: 'bob', epoch: 'e1', seq: 2, message: big });
    const w2 = await log.waitSeq(2);
    assert.deepEqual(w2, { user: 'bob', epoch: 'e1', seq: 2 }, 'a message over 4 KiB is not carried by the wake-up');

    // Another user's wake-up never reaches bob's handler.
    await b.publish({ user: 'carol', epoch: 'e1', seq: 3 });
    await b.publish({ user: 'bob', epoch: 'e1', seq: 4 });
    await log.waitSeq(4);
    assert.deepEqual(log.seqs(), [1, 2, 4]);
    assert.equal(b.stats().published, 4);
  });

  it('ref-counts handlers per user: Redis is unsubscribed only when the last one leaves', async () => {
    const prefix = uniquePrefix();
    await admin.connect().catch(() => undefined);
    const a = await bus(SHARED_REDIS, prefix);
    const b = await bus(SHARED_REDIS, prefix);
    const ch = a.channelFor('bob');
    const log1 = new WakeLog();
    const log2 = new WakeLog();
    const off1 = await a.subscribe('bob', log1.handler);
    const off2 = await a.subscribe('bob', log2.handler);
    assert.equal(await numsub(admin, ch), 1, 'two local handlers share one Redis subscription');

    await off1();
    await off1(); // a second call of the same unsubscribe changes nothing
    assert.equal(await numsub(admin, ch), 1);
    await b.publish({ user: 'bob', epoch: 'e', seq: 1 });
    await log2.waitSeq(1);
    assert.deepEqual(log1.seqs(), [], 'an unsubscribed handler gets nothing');

    await off2();
    assert.equal(await numsub(admin, ch), 0);
    assert.deepEqual(await channels(admin, prefix), []);
    assert.equal(a.stats().channels, 0);
  });

  it('ends matching the last wanted state under concurrent subscribe/unsubscribe of one user', async () => {
    const prefix = uniquePrefix();
    await admin.connect().catch(() => undefined);
    const a = await bus(SHARED_REDIS, prefix);
    const b = await bus(SHARED_REDIS, prefix);
    const ch = a.channelFor('bob');
    const log = new WakeLog();
    for (let round = 0; round < 20; round++) {
      // Fire subscribes and unsubscribes without waiting, interleaved.
      const offs = await Promise.all(Array.from({ length: 5 }, () => a.subscribe('bob', log.handler)));
      const keep = round % 2 === 0;
      const ops: Promise<unknown>[] = [];
      for (const off of offs) ops.push(off());
      let kept: (() => Promise<void>) | undefined;
      if (keep) ops.push(a.subscribe('bob', log.handler).then((off) => (kept = off)));
      ops.push(a.subscribe('bob', log.handler).then((off) => off()));
      await Promise.all(ops);
      assert.equal(await numsub(admin, ch), keep ? 1 : 0, `round ${round}`);
      if (kept) await kept();
      assert.equal(await numsub(admin, ch), 0, `round ${round} after the last unsubscribe`);
    }
    // Still works afterwards.
    await a.subscribe('bob', log.handler);
    await b.publish({ user: 'bob', epoch: 'e', seq: 99 });
    await log.waitSeq(99);
  });

  it('drops malformed payloads and survives a throwing handler', async () => {
    const prefix = uniquePrefix();
    await admin.connect().catch(() => undefined);
    const a = await bus(SHARED_REDIS, prefix);
    const good = new WakeLog();
    await a.subscribe('bob', () => {
      throw new Error('handler bug');
    });
    await a.subscribe('bob', good.handler);
    const ch = a.channelFor('bob');
    await admin.publish(ch, 'not json');
    await admin.publish(ch, JSON.stringify({ user: 'mallory', epoch: 'e', seq: 1 }));
    await admin.publish(ch, JSON.stringify({ user: 'bob', epoch: 'e', seq: -1 }));
    await admin.publish(ch, JSON.stringify({ user: 'bob', epoch: 'e', seq: 5 }));
    await good.waitSeq(5);
    assert.deepEqual(good.seqs(), [5]);
    assert.equal(a.stats().malformed, 3);
    assert.equal(a.healthy(), true);
  });

  it('rejects bad options with BAD_REQUEST and reads the prefix from the URL', async () => {
    const bad: Array<[unknown, string]> = [
      [{ url: 'http://127.0.0.1:6379' }, 'url'],
      [{ url: 'redis://127.0.0.1:6379/notadb' }, 'url'],
      [{ url: 'redis://127.0.0.1:6379?enableOfflineQueue=true' }, 'url'],
      [{ url: 'redis://127.0.0.1:6379', prefix: 'has space' }, 'prefix'],
      [{ url: 'redis://127.0.0.1:6379', maxInlineBytes: -1 }, 'maxInlineBytes'],
    ];
    for (const [input, field] of bad) {
      assert.throws(
        () => new RedisBus(input as { url: string }),
        (err: unknown) => err instanceof PoboxError && err.code === 'BAD_REQUEST' && err.field === field,
        JSON.stringify(input),
      );
    }
    const prefix = uniquePrefix();
    const a = await createRedisBus(`${SHARED_REDIS}/0?prefix=${encodeURIComponent(prefix)}`, FAST);
    cleanups.push(() => a.close());
    assert.equal(a.prefix, prefix);
    // The plain constructor connects by itself too.
    const c = new RedisBus(`${SHARED_REDIS}?prefix=${encodeURIComponent(prefix)}`);
    cleanups.push(() => c.close());
    assert.equal(await c.waitHealthy(5000), true);
    await assert.rejects(
      a.subscribe('not a user!', () => undefined),
      (e: unknown) => e instanceof PoboxError && e.code === 'BAD_REQUEST',
    );
  });

  it('fails start-up with UNAVAILABLE when Redis is unreachable, unless asked to start disconnected', async () => {
    const relay = new TcpRelay(1); // a port we own and then close: nothing listens there
    await relay.open();
    await relay.cut();
    await assert.rejects(
      openRedisBus({ url: relay.url, prefix: uniquePrefix(), ...FAST, connectTimeoutMs: 300 }),
      (e: unknown) => e instanceof PoboxError && e.code === 'UNAVAILABLE',
    );
    const b = await bus(relay.url, uniquePrefix(), { connectTimeoutMs: 300, startDisconnected: true });
    assert.equal(b.healthy(), false);
    // Neither subscribe nor publish throws while down.
    const off = await b.subscribe('bob', () => undefined);
    await b.publish({ user: 'bob', epoch: 'e', seq: 1 });
    assert.equal(b.stats().publishFailures, 1);
    await off();
  });
});

describe('RedisBus through Redis outages (private redis-server)', () => {
  let server: RedisServer | undefined;
  after(async () => {
    await server?.dispose();
  });

  it('goes unhealthy when Redis stops, resubscribes every channel when it is back, and delivers again', async () => {
    server ??= await startRedisServer();
    const prefix = uniquePrefix();
    const a = await bus(server.url, prefix);
    const b = await bus(server.url, prefix);
    const bob = new WakeLog();
    const carol = new WakeLog();
    await a.subscribe('bob', bob.handler);
    await a.subscribe('carol', carol.handler);
    const health: boolean[] = [];
    a.onHealth((h) => health.push(h));

    await b.publish({ user: 'bob', epoch: 'e', seq: 1 });
    await bob.waitSeq(1);

    await server.stop();
    await waitFor(() => !a.healthy() && !b.healthy(), 'both buses unhealthy');
    assert.deepEqual(health, [false]);

    // While down: publishing is swallowed and counted, subscribing a new user still resolves.
    const failuresBefore = b.stats().publishFailures;
    await b.publish({ user: 'bob', epoch: 'e', seq: 2 });
    assert.equal(b.stats().publishFailures, failuresBefore + 1);
    const dave = new WakeLog();
    await a.subscribe('dave', dave.handler);

    await server.start();
    await waitFor(() => a.healthy() && b.healthy(), 'both buses healthy again');
    assert.deepEqual(health, [false, true]);

    const probe = new Redis(server.url);
    cleanups.push(() => probe.quit().then(() => undefined));
    assert.deepEqual(await channels(probe, prefix), [a.channelFor('bob'), a.channelFor('carol'), a.channelFor('dave')]);
    assert.ok(a.stats().resubscribes >= 1);

    await b.publish({ user: 'bob', epoch: 'e', seq: 3 });
    await b.publish({ user: 'carol', epoch: 'e', seq: 4 });
    await b.publish({ user: 'dave', epoch: 'e', seq: 5 });
    await bob.waitSeq(3);
    await carol.waitSeq(4);
    await dave.waitSeq(5);
  });

  it('started while Redis is down (startDisconnected), connects and subscribes once Redis appears', async () => {
    server ??= await startRedisServer();
    const prefix = uniquePrefix();
    await server.stop();
    let a: RedisBus;
    try {
      a = await bus(server.url, prefix, { connectTimeoutMs: 200, startDisconnected: true });
      assert.equal(a.healthy(), false);
    } finally {
      await server.start();
    }
    const bob = new WakeLog();
    await a.subscribe('bob', bob.handler);
    await waitFor(() => a.healthy(), 'the bus healthy once Redis is up');
    const b = await bus(server.url, prefix);
    await b.publish({ user: 'bob', epoch: 'e', seq: 3 });
    await bob.waitSeq(3);
  });

  it('notices a frozen Redis (connection open, nothing answers) and recovers when it thaws', async () => {
    server ??= await startRedisServer();
    const prefix = uniquePrefix();
    const a = await bus(server.url, prefix);
    const b = await bus(server.url, prefix);
    const bob = new WakeLog();
    await a.subscribe('bob', bob.handler);

    server.pause();
    try {
      await waitFor(() => !a.healthy() && !b.healthy(), 'both buses unhealthy while Redis is frozen');
    } finally {
      server.resume();
    }
    await waitFor(() => a.healthy() && b.healthy(), 'both buses healthy after the thaw');
    await b.publish({ user: 'bob', epoch: 'e', seq: 7 });
    await bob.waitSeq(7);
  });

  it('a node cut off from Redis alone publishes its missed wake-ups once it is back', async () => {
    server ??= await startRedisServer();
    const prefix = uniquePrefix();
    const relay = new TcpRelay(server.port);
    await relay.open();
    cleanups.push(() => relay.cut());
    const a = await bus(server.url, prefix); // the receiving node, connected directly
    const b = await bus(relay.url, prefix); // the sending node, through the relay
    const bob = new WakeLog();
    const carol = new WakeLog();
    await a.subscribe('bob', bob.handler);
    await a.subscribe('carol', carol.handler);

    await relay.cut();
    await waitFor(() => !b.healthy(), 'the cut-off bus unhealthy');
    assert.equal(a.healthy(), true);
    await b.publish({ user: 'bob', epoch: 'e', seq: 1 });
    await b.publish({ user: 'bob', epoch: 'e', seq: 2, message: message('bob', 2, 'x') });
    await b.publish({ user: 'carol', epoch: 'e', seq: 9 });
    assert.deepEqual(bob.seqs(), []);

    await relay.open(); // same port again
    await waitFor(() => b.healthy(), 'the cut-off bus healthy again');
    const w = await bob.waitSeq(2);
    assert.deepEqual(w, { user: 'bob', epoch: 'e', seq: 2 }, 'only the newest seq per user is re-sent, without the message');
    await carol.waitSeq(9);
    assert.deepEqual(bob.seqs(), [2]);
    // The subscriber can see a wake-up before the publisher has read Redis's reply to it.
    await waitFor(() => b.stats().republished === 2, 'both re-sent publishes acknowledged');
  });
});

// Types the handler receives are the contract's; a compile-time check that RedisBus fits Bus.
const _fits: (w: Wake) => void = new WakeLog().handler;
void _fits;
