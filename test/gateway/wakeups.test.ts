/**
 * Wake-ups between nodes and what happens when the bus cannot deliver them: several
 * gateways in one process over one in-memory bus and one store, and a bus that goes
 * unhealthy and drops wake-ups (sessions then poll the store).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Bus, Wake, WakeHandler } from '../../src/bus/contract.js';
import { MemoryBus } from '../../src/bus/memory.js';
import type { ReadPage } from '../../src/core/types.js';
import type { ReadRequest } from '../../src/store/contract.js';
import { openStore } from '../../src/store/open.js';
import { PostOffice } from '../../src/postoffice/post-office.js';
import { startTestServer } from './helpers.js';
import { tempDir } from '../support/temp-dir.js';
import { RawClient } from '../support/raw-client.js';

/**
 * The in-memory bus with an outage switch: while down it reports unhealthy and drops
 * every wake-up, as a bus that lost its connection would.
 */
class OutageBus implements Bus {
  readonly kind = 'memory-with-outage';
  private readonly inner = new MemoryBus();
  private down = false;
  private readonly listeners = new Set<(healthy: boolean) => void>();
  published = 0;

  subscribe(user: string, handler: WakeHandler): Promise<() => Promise<void>> {
    return this.inner.subscribe(user, handler);
  }
  async publish(wake: Wake): Promise<void> {
    this.published++;
    if (!this.down) await this.inner.publish(wake);
  }
  healthy(): boolean {
    return !this.down;
  }
  onHealth(fn: (healthy: boolean) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
  setDown(down: boolean): void {
    this.down = down;
    for (const fn of this.listeners) fn(!down);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

describe('wake-ups', () => {
  test('two gateways over one bus and one store: a send on node B reaches a device connected to node A', async () => {
    const dir = tempDir().path;
    const store = await openStore({ engine: 'lmdb', path: join(dir, 'lmdb') });
    const bus = new MemoryBus();
    const a = await startTestServer({}, { store, bus }, join(dir, 'a'));
    const b = await startTestServer({}, { store, bus }, join(dir, 'b'));
    try {
      const bob = await RawClient.connect(a.url, await a.token('bob', 'phone'));
      await bob.waitFor((f) => f.type === 'caughtUp');
      const alice = await RawClient.connect(b.url, await b.token('alice', 'phone'));
      for (let i = 0; i < 20; i++) alice.send({ type: 'send', id: `x${i}`, to: 'bob', body: `hi ${i}` });
      await alice.until(() => alice.frames.filter((f) => f.type === 'accepted').length === 20, 'accepted');
      await bob.until(() => bob.messages().length === 20, '20 live messages on the other node');
      assert.deepEqual(
        bob.messages().map((m) => m.id),
        Array.from({ length: 20 }, (_, i) => `x${i}`),
      );
      await Promise.all([bob.close(), alice.close()]);
      await a.stop();
      // The lent store stays open for its owner and the other node.
      assert.equal((await store.stats('bob', Date.now())).pending, 20);
    } finally {
      await a.stop();
      await b.stop();
      await bus.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a message stored while a session reads its first page is delivered by its wake-up, not left for a poll', async () => {
    const dir = tempDir().path;
    const inner = await openStore({ engine: 'lmdb', path: join(dir, 'lmdb') });
    // Runs once, inside the first read of bob's mailbox: after the page was read, before the session has it.
    let duringRead: (() => Promise<void>) | undefined;
    const store = new Proxy(inner, {
      get(target, key) {
        // The session's first read is readIfRegistered (a device's first read registers it).
        if (key === 'read' || key === 'readIfRegistered')
          return async (req: ReadRequest): Promise<ReadPage | undefined> => {
            const page = await (key === 'read' ? target.read(req) : target.readIfRegistered(req));
            const hook = req.user === 'bob' ? duringRead : undefined;
            if (hook) {
              duringRead = undefined;
              await hook();
            }
            return page;
          };
        const v: unknown = Reflect.get(target, key);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    // No safety poll: only the wake-up can bring the late message.
    const s = await startTestServer({ session: { safetyPollMs: 0 } }, { store }, join(dir, 'srv'));
    try {
      await s.postOffice.registerDevice('bob', 'phone');
      await s.postOffice.send({ from: 'alice', to: 'bob', id: 'before', body: 'one' });
      let late: Promise<unknown> | undefined;
      duringRead = async () => {
        late = s.postOffice.send({ from: 'alice', to: 'bob', id: 'during', body: 'two' });
        await late;
      };
      const bob = await RawClient.connect(s.url, await s.token('bob', 'phone'));
      await bob.until(() => bob.messages().length === 2, 'both messages, the second one by its wake-up');
      assert.ok(late, 'the send ran inside the first read');
      assert.deepEqual(
        bob.messages().map((m) => m.id),
        ['before', 'during'],
      );
      await bob.close();
    } finally {
      await s.stop();
      await inner.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('while the bus is unhealthy and drops wake-ups, sessions poll the store: nothing is lost', async () => {
    const bus = new OutageBus();
    const s = await startTestServer({ session: { pollIntervalMs: 20 } }, { bus });
    try {
      const bob = await RawClient.connect(s.url, await s.token('bob', 'phone'));
      await bob.waitFor((f) => f.type === 'caughtUp');
      const alice = await RawClient.connect(s.url, await s.token('alice', 'phone'));
      alice.send({ type: 'send', id: 'up-1', to: 'bob', body: 'bus up' });
      await bob.waitFor((f) => f.type === 'message' && f.id === 'up-1');

      bus.setDown(true);
      const publishedBefore = bus.published;
      for (let i = 0; i < 5; i++) alice.send({ type: 'send', id: `down-${i}`, to: 'bob', body: 'bus down' });
      await bob.until(() => bob.messages().length === 6, 'messages via polling');
      assert.ok(bus.published > publishedBefore, 'wakes were published (and dropped)');

      bus.setDown(false);
      alice.send({ type: 'send', id: 'up-2', to: 'bob', body: 'bus back' });
      await bob.waitFor((f) => f.type === 'message' && f.id === 'up-2');
      await bob.roundTrip();
      const seqs = bob.messages().map((m) => m.seq);
      assert.deepEqual(
        seqs,
        [...seqs].sort((x, y) => x - y),
      );
      assert.equal(new Set(seqs).size, 7);
      await Promise.all([bob.close(), alice.close()]);
    } finally {
      await s.stop();
    }
  });

  test('a post office injected by the caller is used and left open', async () => {
    const dir = tempDir().path;
    const po = new PostOffice({ store: await openStore({ engine: 'lmdb', path: join(dir, 'lmdb') }), sweeper: false });
    const s = await startTestServer({}, { postOffice: po }, join(dir, 'srv'));
    try {
      assert.equal(s.postOffice, po);
      const c = await RawClient.connect(s.url, await s.token('zed', 'phone'));
      c.send({ type: 'send', id: 'p1', to: 'zed', body: 'self' });
      await c.waitFor((f) => f.type === 'message' && f.id === 'p1');
      await c.close();
    } finally {
      await s.stop();
    }
    assert.equal((await po.stats('zed')).pending, 1, 'post office still open after the server closed');
    await po.close();
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('wake-ups over Redis', () => {
  test('--bus redis://: a send on node B reaches a device on node A through the real Redis bus', async () => {
    const dir = tempDir().path;
    const store = await openStore({ engine: 'lmdb', path: join(dir, 'lmdb') });
    // A fresh key prefix per run keeps this test's channels apart from anyone else's.
    const bus = `redis://127.0.0.1:6379/0?prefix=gwtest-${process.pid}-${Date.now()}:`;
    const a = await startTestServer({ bus }, { store }, join(dir, 'a'));
    const b = await startTestServer({ bus }, { store }, join(dir, 'b'));
    try {
      assert.equal(a.bus.healthy(), true);
      const bob = await RawClient.connect(a.url, await a.token('bob', 'phone'));
      await bob.waitFor((f) => f.type === 'caughtUp');
      const alice = await RawClient.connect(b.url, await b.token('alice', 'phone'));
      for (let i = 0; i < 10; i++) alice.send({ type: 'send', id: `r${i}`, to: 'bob', body: `hi ${i}` });
      await bob.until(() => bob.messages().length === 10, '10 messages across nodes');
      assert.deepEqual(
        bob.messages().map((m) => m.id),
        Array.from({ length: 10 }, (_, i) => `r${i}`),
      );
      await Promise.all([bob.close(), alice.close()]);
    } finally {
      await a.stop();
      await b.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
