/**
 * SIGKILL `pobox serve` while SDK clients send, restart it on the same data dir and
 * port: every send that was accepted is delivered, and the application sees none twice.
 */
import assert from 'node:assert/strict';
import { afterEach, it } from 'node:test';
import { WebSocket } from 'ws';
import { connect, type ClientMessage, type PoboxClient, type SendReceipt } from '../../src/client/index.js';
import { mintToken } from '../../src/gateway/auth.js';
import { waitFor } from './helpers.js';
import { newSecret, Resources, tempDir } from './gateway-helpers.js';
import { freePort, spawnServe, type ServeChild } from './serve-child.js';

const res = new Resources();
afterEach(() => res.closeAll());

const SENDERS = 4;
const PER_SENDER = 200;
const IN_FLIGHT = 8;

it('loses no accepted message and shows none twice across a SIGKILL of the server', async () => {
  const dataDir = tempDir(res);
  const secret = newSecret();
  const port = await freePort();
  const env = { POBOX_JWT_SECRETS: secret };
  const args = ['--port', String(port), '--data-dir', dataDir];
  let server: ServeChild = await spawnServe(args, env);
  res.add(async () => {
    if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
    await server.exited;
  });

  const open = async (user: string, device: string): Promise<PoboxClient> => {
    const c = connect(server.wsUrl, await mintToken({ secret, user, device }), { WebSocket, backoffBaseMs: 50, backoffMaxMs: 400 });
    res.add(() => c.close());
    return c;
  };

  const bob = await open('bob', 'phone');
  const handed: ClientMessage[] = [];
  bob.on('message', async (m) => {
    handed.push(m);
    // A little work per message, so the kill finds some messages handed over but not acked.
    await new Promise((r) => setImmediate(r));
  });
  await bob.ready();

  const accepted = new Map<string, SendReceipt>();
  const sender = async (i: number): Promise<void> => {
    const c = await open(`sender${i}`, 'd');
    let next = 0;
    const loop = async (): Promise<void> => {
      while (next < PER_SENDER) {
        const id = `s${i}-${next++}`;
        const receipt = await c.send({ to: 'bob', body: `from ${i}: ${id}`, id });
        accepted.set(id, receipt);
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, loop));
  };
  const sending = Promise.all(Array.from({ length: SENDERS }, (_, i) => sender(i)));

  await waitFor(() => accepted.size >= 200 && handed.length >= 50, 'traffic before the kill', 30_000);
  server.child.kill('SIGKILL');
  const killed = await server.exited;
  assert.equal(killed.signal, 'SIGKILL');
  const acceptedBeforeKill = accepted.size;
  assert.ok(acceptedBeforeKill < SENDERS * PER_SENDER, 'the kill happened while sends were still going');

  server = await spawnServe(args, env);
  await sending; // every send resolves: the unanswered ones were resent with their ids
  assert.equal(accepted.size, SENDERS * PER_SENDER);

  const bySeq = new Map<number, string>();
  for (const [id, r] of accepted) {
    assert.equal(bySeq.has(r.seq), false, `seq ${r.seq} given to two different ids`);
    bySeq.set(r.seq, id);
  }
  await waitFor(() => handed.length >= bySeq.size, `bob receiving all ${bySeq.size} accepted messages`, 60_000);
  const seen = new Map<number, number>();
  for (const m of handed) seen.set(m.seq, (seen.get(m.seq) ?? 0) + 1);
  const twice = [...seen].filter(([, n]) => n > 1).map(([s]) => s);
  assert.deepEqual(twice, [], 'no message handed to the application twice');
  const missing = [...bySeq.keys()].filter((s) => !seen.has(s));
  assert.deepEqual(missing, [], 'every accepted message delivered');
  for (const m of handed) assert.equal(m.id, bySeq.get(m.seq), `seq ${m.seq} carries the id it was accepted with`);
  assert.equal(handed.length, bySeq.size, 'nothing delivered that was not accepted');
  assert.ok(bob.stats.reconnects >= 1);
});
