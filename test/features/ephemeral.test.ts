/**
 * Ephemeral messages: handed only to the recipient's devices connected right now, on any
 * node (through the bus), never stored, never in a drain or in stats, answered with the
 * number of devices reached. Run over an in-memory bus and over Redis.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { EphemeralClientMessage } from '../../src/client/index.js';
import { waitFor } from '../bus/bus-helpers.js';
import { Devices, names } from '../multinode/scenarios.js';
import { busesOf, startInProcessCluster, type BusKind, type InProcessCluster } from '../multinode/in-process-cluster.js';

async function http(c: InProcessCluster, node: number, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(c.servers[node]!.url + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

for (const kind of ['memory', 'redis'] as BusKind[]) {
  describe(`ephemeral messages, three nodes over the ${kind} bus`, () => {
    let c: InProcessCluster;
    before(async () => {
      c = await startInProcessCluster(busesOf(kind));
    });
    after(() => c.close());

    it('reaches two online devices on two different nodes, and is absent from every later drain and from stats', async () => {
      const [alice, bob] = names('alice', 'bob');
      const devs = new Devices(c);
      try {
        // A device that stays offline, to drain afterwards (and keep the stored message from being deleted).
        const tablet = await http(c, 2, await c.token(bob!, 'tablet'), 'PUT', `/v1/users/${bob}/devices/tablet`, { start: 'oldest' });
        assert.equal(tablet.status, 201);
        const phone = await devs.open(bob!, 'phone', [0]);
        const laptop = await devs.open(bob!, 'laptop', [1]);
        await Promise.all([phone.waitCaughtUp(), laptop.waitCaughtUp()]);
        const seen: Record<string, EphemeralClientMessage[]> = { phone: [], laptop: [] };
        phone.client.on('ephemeral', (e) => void seen['phone']!.push(e));
        laptop.client.on('ephemeral', (e) => void seen['laptop']!.push(e));

        // From a third node: both devices are remote.
        const a = await devs.open(alice!, 'web', [2]);
        await a.waitCaughtUp();
        const r = await a.client.send({ to: bob!, body: 'typing…', id: 'typing-1', ephemeral: true });
        assert.equal(r.reached, 2);
        assert.equal(r.seq, 0);
        await waitFor(() => seen['phone']!.length === 1 && seen['laptop']!.length === 1, 'both devices got the ephemeral');
        for (const got of [seen['phone']!, seen['laptop']!]) {
          assert.equal(got[0]!.id, 'typing-1');
          assert.equal(got[0]!.from, alice);
          assert.equal(got[0]!.body, 'typing…');
        }

        // Over HTTP on node 1, where the phone is: one local device plus one remote.
        const viaHttp = await http(c, 0, await c.token(alice!, 'web'), 'POST', '/v1/messages', { to: bob!, id: 'typing-2', body: 'stopped', ephemeral: true });
        assert.equal(viaHttp.status, 200);
        assert.equal(viaHttp.body.reached, 2);
        assert.equal(viaHttp.body.durable, false);
        await waitFor(() => seen['phone']!.length === 2 && seen['laptop']!.length === 2, 'both devices got the second ephemeral');

        // Targeted at one device: only that one.
        const one = await a.client.send({ to: bob!, body: 'just you', id: 'typing-3', ephemeral: true, toDevice: 'laptop' });
        assert.equal(one.reached, 1);
        await waitFor(() => seen['laptop']!.length === 3, 'the laptop got the targeted ephemeral');

        // Nothing stored: no seq used, nothing pending, and a stored message after them is seq 1.
        const stats = await c.servers[0]!.postOffice.stats(bob!);
        assert.equal(stats.lastSeq, 0);
        assert.equal(stats.pending, 0);
        const stored = await a.client.send({ to: bob!, body: 'a real message', id: 'real-1' });
        assert.equal(stored.seq, 1);
        await phone.waitMessages(1);
        await laptop.waitMessages(1);
        assert.deepEqual(
          phone.messages.map((m) => m.id),
          ['real-1'],
          'ephemerals never arrive as messages',
        );
        assert.equal(seen['phone']!.length, 2, 'the targeted ephemeral did not reach the phone');

        // A later drain by a device that was offline sees only the stored message.
        const drain = await http(c, 2, await c.token(bob!, 'tablet'), 'GET', '/v1/messages?after=0');
        assert.deepEqual(
          drain.body.messages.map((m: { id: string }) => m.id),
          ['real-1'],
        );
      } finally {
        devs.closeAll();
      }
    });

    it('an offline recipient: reached 0 and nothing stored', async () => {
      const [alice, carol] = names('alice', 'carol');
      const devs = new Devices(c);
      try {
        const a = await devs.open(alice!, 'web', [1]);
        await a.waitCaughtUp();
        const r = await a.client.send({ to: carol!, body: 'typing…', ephemeral: true });
        assert.equal(r.reached, 0);
        // Carol has a device that is not connected: still 0.
        await c.servers[0]!.postOffice.registerDevice(carol!, 'phone');
        assert.equal((await a.client.send({ to: carol!, body: 'typing…', ephemeral: true })).reached, 0);
        const stats = await c.servers[2]!.postOffice.stats(carol!);
        assert.equal(stats.lastSeq, 0);
        assert.equal(stats.pending, 0);
        assert.equal(stats.pendingBytes, 0);
      } finally {
        devs.closeAll();
      }
    });

    it('refuses what only a stored message can have, and bodies over the size limit', async () => {
      const [alice, bob] = names('alice', 'bob');
      const token = await c.token(alice!, 'web');
      const ttl = await http(c, 0, token, 'POST', '/v1/messages', { to: bob!, id: 'x1', body: 'hi', ephemeral: true, ttlSeconds: 5 });
      assert.equal(ttl.status, 400);
      assert.equal(ttl.body.error.code, 'BAD_REQUEST');
      assert.match(ttl.body.error.message, /ttlSeconds/);
      const big = await http(c, 0, token, 'POST', '/v1/messages', { to: bob!, id: 'x2', body: 'x'.repeat(64 * 1024 + 1), ephemeral: true });
      assert.equal(big.status, 413);
      assert.equal(big.body.error.code, 'PAYLOAD_TOO_LARGE');
    });
  });
}
