/**
 * The offline wake-up hook against a real local HTTP receiver: once per user per
 * interval, never any content, retries on failure, and a slow receiver never holds up
 * a send (checked by ordering and counts, not by timing).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PostOffice } from '../../src/postoffice/post-office.js';
import { WakeupHook, type Presence, type WakeupOutcome } from '../../src/postoffice/wakeup-hook.js';
import { openLmdbStore } from '../../src/store/lmdb/index.js';
import type { ServerResponse } from 'node:http';
import { ManualClock, startReceiver, waitFor } from '../ops/helpers.js';
import { tempDir } from '../support/temp-dir.js';

/** Presence as the gateway keeps it: the devices with a live session, per user. */
class LocalPresence implements Presence {
  readonly online = new Map<string, string[]>();
  connectedDevices(user: string): readonly string[] {
    return this.online.get(user) ?? [];
  }
}

async function setup(hookConfig: Record<string, unknown>) {
  const dir = tempDir();
  const clock = new ManualClock();
  const po = new PostOffice({ store: await openLmdbStore({ path: dir.path }), clock, sweeper: false });
  const receiver = await startReceiver();
  const presence = new LocalPresence();
  const outcomes: Array<{ user: string; outcome: WakeupOutcome; attempts?: number }> = [];
  const hook = new WakeupHook({
    config: { url: receiver.url, headers: { authorization: 'Bearer hook-secret' }, ...hookConfig },
    presence,
    clock,
    onOutcome: (user, outcome, d) => outcomes.push({ user, outcome, ...(d?.attempts !== undefined ? { attempts: d.attempts } : {}) }),
  });
  hook.attach(po);
  return {
    po,
    clock,
    receiver,
    presence,
    hook,
    outcomes,
    async close() {
      await hook.close();
      await po.close();
      await receiver.close();
      await dir.remove();
    },
  };
}

test('called once per offline user per interval, with user and devices and never content', async () => {
  const env = await setup({ intervalMs: 60_000 });
  try {
    await env.po.registerDevice('bob', 'phone');
    await env.po.registerDevice('bob', 'tablet');
    env.presence.online.set('carol', ['laptop']);
    const secretBodies = ['SECRET-ONE', 'SECRET-TWO', 'SECRET-THREE'];
    for (const [i, body] of secretBodies.entries()) {
      await env.po.send({ from: 'alice', to: 'bob', id: `b${i}`, body });
      await env.po.send({ from: 'alice', to: 'carol', id: `c${i}`, body });
    }
    await env.hook.idle();
    assert.equal(env.receiver.requests.length, 1);
    const req = env.receiver.requests[0]!;
    assert.equal(req.headers['content-type'], 'application/json');
    assert.equal(req.headers.authorization, 'Bearer hook-secret');
    const payload = JSON.parse(req.raw);
    assert.deepEqual(Object.keys(payload).sort(), ['devices', 'pendingHint', 'user']);
    assert.equal(payload.user, 'bob');
    assert.deepEqual([...payload.devices].sort(), ['phone', 'tablet']);
    assert.ok(payload.pendingHint >= 1 && payload.pendingHint <= 3);
    for (const body of secretBodies) assert.ok(!req.raw.includes(body), 'the webhook must never see a body');
    assert.ok(!req.raw.includes('alice'), 'nor the sender');
    assert.equal(env.outcomes.filter((o) => o.outcome === 'delivered').length, 1);
    assert.equal(env.outcomes.filter((o) => o.user === 'carol' && o.outcome === 'online').length, 3);

    // Within the interval: throttled. After it: called again.
    env.clock.advance(59_999);
    await env.po.send({ from: 'alice', to: 'bob', id: 'b-late', body: 'x' });
    await env.hook.idle();
    assert.equal(env.receiver.requests.length, 1);
    env.clock.advance(1);
    await env.po.send({ from: 'alice', to: 'bob', id: 'b-later', body: 'y' });
    await env.hook.idle();
    assert.equal(env.receiver.requests.length, 2);
    assert.equal(JSON.parse(env.receiver.requests[1]!.raw).pendingHint, 5);

    // Carol goes offline: her next message wakes her.
    env.presence.online.delete('carol');
    await env.po.send({ from: 'alice', to: 'carol', id: 'c-off', body: 'z' });
    await env.hook.idle();
    assert.equal(env.receiver.requests.length, 3);
    assert.equal(JSON.parse(env.receiver.requests[2]!.raw).user, 'carol');
  } finally {
    await env.close();
  }
});

test('a failing receiver is retried with backoff, then given up on; 4xx is not retried', async () => {
  const env = await setup({ retries: 3, backoffMs: 5 });
  try {
    env.receiver.handler = (_req, res, n) => res.writeHead(n <= 2 ? 503 : 200).end();
    await env.po.send({ from: 'a', to: 'u1', id: '1', body: 'x' });
    await env.hook.idle();
    assert.equal(env.receiver.requests.length, 3);
    assert.deepEqual(env.outcomes.at(-1), { user: 'u1', outcome: 'delivered', attempts: 3 });

    env.receiver.handler = (_req, res) => res.writeHead(500).end();
    await env.po.send({ from: 'a', to: 'u2', id: '1', body: 'x' });
    await env.hook.idle();
    assert.equal(env.receiver.requests.length, 3 + 4); // first try + 3 retries
    assert.deepEqual(env.outcomes.at(-1), { user: 'u2', outcome: 'failed', attempts: 4 });

    env.receiver.handler = (_req, res) => res.writeHead(400).end();
    await env.po.send({ from: 'a', to: 'u3', id: '1', body: 'x' });
    await env.hook.idle();
    assert.equal(env.receiver.requests.length, 8);
    assert.deepEqual(env.outcomes.at(-1), { user: 'u3', outcome: 'failed', attempts: 1 });
  } finally {
    await env.close();
  }
});

test('a receiver that never answers times out and is retried', async () => {
  // The timeout is long enough for each attempt to reach the receiver on a loaded machine.
  const env = await setup({ retries: 1, backoffMs: 1, timeoutMs: 1000 });
  try {
    env.receiver.handler = () => undefined; // hold every request open
    await env.po.send({ from: 'a', to: 'u1', id: '1', body: 'x' });
    await env.hook.idle();
    assert.deepEqual(env.outcomes.at(-1), { user: 'u1', outcome: 'failed', attempts: 2 });
    assert.equal(env.receiver.requests.length, 2);
  } finally {
    await env.close();
  }
});

test('a stuck receiver never holds up sends: the queue is bounded and overflow is dropped, not waited for', async () => {
  const env = await setup({ concurrency: 2, maxQueue: 10, timeoutMs: 60_000, retries: 0 });
  try {
    const held: ServerResponse[] = [];
    env.receiver.handler = (_req, res) => held.push(res);
    // 40 sends to 40 offline users, all resolving while the receiver answers nothing.
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => env.po.send({ from: 'a', to: `user${i}`, id: 'm', body: 'x' })));
    assert.equal(results.length, 40);
    await waitFor(() => held.length === 2, 'two calls in flight');
    assert.equal(held.length, 2, 'no more calls than the concurrency, and none answered');
    assert.equal(env.hook.queueLength, 10);
    assert.equal(env.outcomes.filter((o) => o.outcome === 'dropped').length, 40 - 2 - 10);
    // More sends still complete at once while the receiver is stuck.
    await env.po.send({ from: 'a', to: 'user0', id: 'again', body: 'x' });
    // Release the receiver: every queued user is called once.
    env.receiver.handler = (_req, res) => res.writeHead(204).end();
    for (const res of held.splice(0)) res.writeHead(204).end();
    await env.hook.idle();
    assert.equal(env.receiver.requests.length, 12);
    assert.equal(env.outcomes.filter((o) => o.outcome === 'delivered').length, 12);
  } finally {
    await env.close();
  }
});

test('an in-process callback gets the same payload', async () => {
  const dir = tempDir();
  const po = new PostOffice({ store: await openLmdbStore({ path: dir.path }), sweeper: false });
  const calls: unknown[] = [];
  const hook = new WakeupHook({ presence: { connectedDevices: async () => [] }, callback: (p) => void calls.push(p) });
  try {
    hook.attach(po);
    await po.registerDevice('zed', 'watch');
    await po.send({ from: 'a', to: 'zed', id: '1', body: 'content' });
    await hook.idle();
    await po.send({ from: 'a', to: 'zed', id: '2', body: 'content' });
    await hook.idle();
    assert.deepEqual(calls, [{ user: 'zed', devices: ['watch'], pendingHint: 1 }]); // the second send is within the interval
  } finally {
    await hook.close();
    await po.close();
    await dir.remove();
  }
});
