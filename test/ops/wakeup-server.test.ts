/**
 * The wake-up hook as `pobox serve` wires it (config `wakeupHook.url`): a user with no
 * connected device is woken; a connected one is not; receipts never wake anyone.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseProm, sample } from '../support/prom-text.js';
import { startReceiver } from './helpers.js';
import { startOpsServer } from './server-helpers.js';
import { RawClient } from '../support/raw-client.js';

test('the server calls the webhook for offline users only, never for receipts', async () => {
  const receiver = await startReceiver();
  const calls = (): Array<Record<string, unknown>> => receiver.bodies<Record<string, unknown>>();
  const url = receiver.url;
  const s = await startOpsServer({ wakeupHook: { url, intervalMs: 60_000 } });
  const clients: RawClient[] = [];
  try {
    const alice = await RawClient.session(s.server.wsUrl, await s.token('alice', 'laptop'));
    clients.push(alice);
    // bob has a registered phone but is offline: woken once.
    await s.server.postOffice.registerDevice('bob', 'phone');
    await alice.sendAndWait({ id: 'm1', to: 'bob', body: 'secret stuff', receipt: true });
    await s.server.ops.wakeupHook!.idle();
    // Within the interval: throttled (counted once the first call is done, so exactly one).
    await alice.sendAndWait({ id: 'm2', to: 'bob', body: 'more secret stuff' });
    await s.server.ops.wakeupHook!.idle();
    assert.deepEqual(calls(), [{ user: 'bob', devices: ['phone'], pendingHint: 1 }]);
    // carol is online: never woken.
    const carol = await RawClient.session(s.server.wsUrl, await s.token('carol', 'web'));
    clients.push(carol);
    await alice.sendAndWait({ id: 'c1', to: 'carol', body: 'hi carol' });
    await s.server.ops.wakeupHook!.idle();
    assert.equal(calls().length, 1);
    // alice goes offline; bob comes online and acks m1: the receipt for alice wakes nobody.
    await alice.close();
    const bob = await RawClient.session(s.server.wsUrl, await s.token('bob', 'phone'));
    clients.push(bob);
    bob.send({ type: 'ack', upTo: 2 });
    await bob.waitFor((f) => f.type === 'acked', 'bob acked');
    assert.equal((await s.server.postOffice.stats('alice')).pending, 1, 'the receipt is waiting for alice');
    await s.server.ops.wakeupHook!.idle();
    assert.equal(calls().length, 1);
    const m = parseProm((await s.get('/metrics')).text);
    assert.equal(sample(m, 'pobox_wakeup_hook_total', { outcome: 'delivered' }), 1);
    assert.equal(sample(m, 'pobox_wakeup_hook_total', { outcome: 'online' }), 1);
    assert.equal(sample(m, 'pobox_wakeup_hook_total', { outcome: 'throttled' }), 1);
  } finally {
    for (const c of clients) await c.close();
    await s.close();
    await receiver.close();
  }
});
