/**
 * Issue 13's lost wake-up, reproduced on real `pobox serve` processes over DynamoDB Local
 * and Redis: node A is cut off from Redis (a proxy that silently drops every byte) while
 * DynamoDB stays reachable; alice's send through A is accepted; A is SIGKILLed 1.5 s later,
 * taking the wake-up it could not publish with it. Bob is live on node B, which sees Redis
 * healthy. Bob must still get the message, without anything else being sent, within the
 * stated bound: session.safetyPollMs plus one store read (src/gateway/safety-poll.ts).
 * Before the safety poll, bob waited until the next message to him, without limit.
 *
 * The second test isolates the other repair: with the safety poll off, a resend of the same
 * id (answered duplicate) wakes the recipient again.
 */
import { strict as assert } from 'node:assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { uniquePrefix } from '../bus/bus-helpers.js';
import { startDynamoDbLocal, type DynamoDbLocal } from '../../tools/dynamodb-local.js';
import { startRedisServer, type RedisServer } from '../../tools/redis-server.js';
import { RawDevice, waitFor } from '../multinode/devices.js';
import { startServer, type RunningServer } from '../../src/server/compose.js';
import { mintToken } from '../../src/gateway/auth.js';
import { newSecret, startServeNode, userToken, type ServeNode } from './serve-nodes.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

/** The bound under test, short for CI (production default: 20 s). */
const SAFETY_POLL_MS = 3000;
/** One store read on a shared 2-core machine, generously. */
const READ_SLACK_MS = 4000;

async function httpSend(url: string, token: string, msg: { to: string; id: string; body: string }): Promise<{ status: number; json: { seq: number; duplicate: boolean } }> {
  const res = await fetch(`${url}/v1/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(msg),
    signal: AbortSignal.timeout(20_000),
  });
  return { status: res.status, json: (await res.json()) as { seq: number; duplicate: boolean } };
}

describe('a wake-up lost with its node (issue 13)', () => {
  let dir: string;
  let ddb: DynamoDbLocal | undefined;
  let redis: RedisServer | undefined;
  let proxy: TcpProxy | undefined;
  const nodes: ServeNode[] = [];
  const devices: RawDevice[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pobox-lost-wake-'));
    [ddb, redis] = await Promise.all([startDynamoDbLocal({ startTimeoutMs: 180_000 }), startRedisServer()]);
    proxy = await startTcpProxy(redis.port);
  });

  after(async () => {
    for (const d of devices) await d.cut().catch(() => undefined);
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await proxy?.close();
    await Promise.allSettled([ddb?.stop(), redis?.dispose()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('reaches bob on node B within safetyPollMs + one read, with nothing else sent', async () => {
    const table = await ddb!.newTable({ ttl: true });
    const secret = newSecret();
    const prefix = encodeURIComponent(uniquePrefix());
    const common = { dir, secret, dynamodbEndpoint: ddb!.endpoint, dynamodbTable: table, config: { session: { safetyPollMs: SAFETY_POLL_MS, pollIntervalMs: 250 } } };
    const [a, b] = await Promise.all([
      startServeNode({ ...common, name: 'a', bus: `redis://127.0.0.1:${proxy!.port}/0?prefix=${prefix}` }),
      startServeNode({ ...common, name: 'b', bus: `${redis!.url}/0?prefix=${prefix}` }),
    ]);
    nodes.push(a!, b!);
    const bob = new RawDevice();
    devices.push(bob);
    await bob.open(b!.wsUrl, await userToken(secret, 'bob', 'phone'));
    await bob.waitFrame((f) => f.type === 'caughtUp', 'bob caught up on B');
    const alice = await userToken(secret, 'alice', 'laptop');

    // Both nodes work: a message through A reaches bob on B through Redis.
    assert.equal((await httpSend(a!.httpUrl, alice, { to: 'bob', id: 'before-cut', body: 'hello' })).status, 201);
    await bob.waitFrame((f) => f.type === 'message' && f.id === 'before-cut', 'the first message, woken through Redis');

    proxy!.cut();
    const sent = await httpSend(a!.httpUrl, alice, { to: 'bob', id: 'lost-wake', body: 'are you there?' });
    assert.equal(sent.status, 201, 'accepted: DynamoDB is reachable from A');
    const acceptedAt = Date.now();
    await new Promise((r) => setTimeout(r, 1500));
    await a!.kill();

    const bound = SAFETY_POLL_MS + READ_SLACK_MS;
    await bob.waitFrame((f) => f.type === 'message' && f.id === 'lost-wake', `the message whose wake-up died with A, within ${bound} ms`, bound);
    const delay = Date.now() - acceptedAt;
    assert.ok(delay <= bound, `delivered ${delay} ms after acceptance; the bound is ${bound} ms`);
    const frame = bob.of('message').find((f) => f.id === 'lost-wake')!;
    assert.equal(frame.seq, sent.json.seq);
    assert.equal(bob.of('message').filter((f) => f.id === 'lost-wake').length, 1, 'sent once');
  });

  it('with the safety poll off, a resend of the same id wakes the recipient again', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'pobox-resend-wake-'));
    const secret = newSecret();
    let server: RunningServer | undefined;
    const bob = new RawDevice();
    try {
      server = await startServer({ port: 0, dataDir, logLevel: 'silent', auth: { secrets: [secret] }, session: { safetyPollMs: 0 } });
      await bob.open(server.wsUrl, await mintToken({ secret, user: 'bob', device: 'phone' }));
      await bob.waitFrame((f) => f.type === 'caughtUp', 'bob caught up');
      // Stored as a node would that died before publishing: straight into the store, no wake-up.
      const now = Date.now();
      const [outcome] = await server.postOffice.store.append([{ id: 'w1', from: 'alice', to: 'bob', body: 'hi', bytes: 2, sentAt: now, expiresAt: now + 60_000 }], {
        maxMailboxMessages: 1000,
        maxMailboxBytes: 1 << 20,
      });
      assert.ok(outcome?.ok);
      const alice = await mintToken({ secret, user: 'alice', device: 'laptop' });
      const resent = await httpSend(server.url, alice, { to: 'bob', id: 'w1', body: 'hi' });
      assert.deepEqual([resent.status, resent.json.duplicate, resent.json.seq], [200, true, outcome.seq]);
      await bob.waitFrame((f) => f.type === 'message' && f.id === 'w1', 'the message, woken by the resend', 5000);
      await waitFor(() => bob.of('message').length === 1, 'exactly one frame');
    } finally {
      await bob.cut().catch(() => undefined);
      await server?.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
