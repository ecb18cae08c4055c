/**
 * Every store call the post office makes has a deadline (postOffice.storeTimeoutMs): a
 * store that stops answering fails the call with UNAVAILABLE in time instead of holding
 * it, whatever the engine. Here a real lmdb store is frozen by holding its calls; the
 * DynamoDB Local SIGSTOP version is test/hardening/frozen-store.test.ts.
 */
import { strict as assert } from 'node:assert';
import { after, describe, it } from 'node:test';
import { PoboxError } from '../../src/core/errors.js';
import { PostOffice } from '../../src/postoffice/post-office.js';
import type { MailboxStore } from '../../src/store/contract.js';
import { openStore } from '../../src/store/open.js';
import { tempDir } from '../support/temp-dir.js';

/** A real store whose calls wait while `frozen` (as a stalled disk would hold them). */
async function freezable(path: string): Promise<{ store: MailboxStore; freeze(): void; thaw(): void; real: MailboxStore }> {
  const real = await openStore({ engine: 'lmdb', path });
  let gate: Promise<void> | undefined;
  let open: (() => void) | undefined;
  const held =
    <A extends unknown[], R>(fn: (...a: A) => Promise<R>) =>
    async (...a: A): Promise<R> => {
      if (gate) await gate;
      return fn.apply(real, a);
    };
  const store: MailboxStore = {
    ...Object.fromEntries(
      ['read', 'readIfRegistered', 'ack', 'registerDevice', 'removeDevice', 'listDevices', 'stats', 'purge', 'sweep', 'users', 'exportPage', 'restore'].map((k) => [
        k,
        held((real as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[k]!),
      ]),
    ),
    engine: real.engine,
    capabilities: real.capabilities,
    append: held(real.append),
    counters: () => real.counters(),
    close: () => real.close(),
  } as MailboxStore;
  return {
    store,
    real,
    freeze() {
      gate = new Promise((r) => (open = r));
    },
    thaw() {
      gate = undefined;
      open?.();
    },
  };
}

const dirs: Array<{ remove: () => Promise<void> }> = [];
after(async () => {
  for (const d of dirs) await d.remove();
});

describe('store deadline in the post office', () => {
  it('answers UNAVAILABLE in time while the store is frozen, still wakes the recipient when the late append lands, and loses nothing', async () => {
    const dir = tempDir('pobox-deadline-');
    dirs.push(dir);
    const f = await freezable(dir.path);
    const po = new PostOffice({ store: f.store, config: { storeTimeoutMs: 1500 }, sweeper: false });
    const stored: number[] = [];
    po.events.on('stored', (e) => stored.push(e.message.seq));
    const resent: number[] = [];
    po.events.on('resent', (e) => resent.push(e.seq));
    await po.registerDevice('bob', 'phone');
    assert.equal((await po.send({ from: 'alice', to: 'bob', id: 'm1', body: 'one' })).seq, 1);

    f.freeze();
    const t0 = Date.now();
    const answers = await Promise.allSettled([
      po.send({ from: 'alice', to: 'bob', id: 'm2', body: 'two' }),
      po.read('bob', 'phone', 0, 10),
      po.ack('bob', 'phone', 1),
      po.stats('bob'),
    ]);
    const waited = Date.now() - t0;
    for (const a of answers) {
      assert.equal(a.status, 'rejected');
      assert.ok(a.reason instanceof PoboxError);
      assert.equal(a.reason.code, 'UNAVAILABLE');
      assert.match(a.reason.message, /did not answer/);
    }
    assert.ok(waited < 6000, `answered after ${waited} ms (deadline 1500 ms, loaded machine)`);
    assert.ok(po.writeHealth().consecutiveFailures >= 2, 'the timed-out append and ack count as failed writes');

    f.thaw();
    // The append that timed out lands after all: its recipient is woken, and the sender's retry is a duplicate that wakes again.
    await waitUntil(() => stored.includes(2));
    const retry = await po.send({ from: 'alice', to: 'bob', id: 'm2', body: 'two' });
    assert.deepEqual([retry.seq, retry.duplicate], [2, true]);
    assert.deepEqual(resent, [2]);
    assert.equal(po.writeHealth().consecutiveFailures, 0, 'a write that succeeded resets the count');
    // The timed-out ack of m1 landed late too (the device had m1); m2 waits for delivery.
    const page = await po.read('bob', 'phone', 0, 10);
    assert.deepEqual(
      page.messages.map((m) => m.id),
      ['m2'],
    );
    await po.close();
  });

  it('types what an engine throws as UNAVAILABLE (e.g. ENOSPC) and counts it as a failed write', async () => {
    const dir = tempDir('pobox-deadline-');
    dirs.push(dir);
    const real = await openStore({ engine: 'lmdb', path: dir.path });
    const store = Object.assign(Object.create(real) as MailboxStore, {
      engine: real.engine,
      capabilities: real.capabilities,
      append: () => Promise.reject(Object.assign(new Error('MDB_MAP_FULL / No space left on device'), { code: 'ENOSPC' })),
    });
    const po = new PostOffice({ store, sweeper: false });
    await assert.rejects(po.send({ from: 'alice', to: 'bob', id: 'x', body: 'b' }), (e: unknown) => e instanceof PoboxError && e.code === 'UNAVAILABLE');
    assert.equal(po.writeHealth().consecutiveFailures, 1);
    assert.match(po.writeHealth().lastError ?? '', /No space/);
    await po.close();
  });
});

async function waitUntil(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}
