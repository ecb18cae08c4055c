/**
 * Three gateway nodes in one process sharing one lmdb store: first over one in-memory
 * bus (the nodes' logic alone), then each node with its own RedisBus on the machine's
 * Redis (the real wake-up path, still without child processes), then each node with its
 * own RedisClusterBus on a local 3-master Redis Cluster (sharded pub/sub), including a
 * master SIGKILLed and restarted.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Bus } from '../../src/bus/contract.js';
import { MemoryBus } from '../../src/bus/memory.js';
import { openRedisBus } from '../../src/bus/redis.js';
import { openRedisClusterBus } from '../../src/bus/redis-cluster.js';
import { mintToken } from '../../src/gateway/auth.js';
import { startServer, type RunningServer } from '../../src/server/compose.js';
import type { MailboxStore } from '../../src/store/contract.js';
import { openStore } from '../../src/store/open.js';
import { SHARED_REDIS, uniquePrefix } from '../bus/bus-helpers.js';
import { startRedisCluster, type RedisClusterHandle } from '../../tools/redis-cluster.js';
import { crossNodeLive, moveMidStream, moveMidStreamRaw, redisOutage, type Cluster } from './scenarios.js';

interface InProcessCluster extends Cluster {
  /** True while node `i`'s bus reports healthy. */
  ready(i: number): Promise<boolean>;
  close(): Promise<void>;
}

async function startCluster(busFor: (node: number) => Promise<Bus>): Promise<InProcessCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'pobox-multinode-'));
  const secret = randomBytes(32).toString('base64url');
  const store: MailboxStore = await openStore({ engine: 'lmdb', path: join(dir, 'lmdb') });
  const buses: Bus[] = [];
  const servers: RunningServer[] = [];
  const close = async (): Promise<void> => {
    await Promise.allSettled(servers.map((s) => s.close()));
    await Promise.allSettled([...new Set(buses)].map((b) => b.close()));
    // Closing a post office closes its store, so the shared store may be closed already.
    await store.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < 3; i++) {
      const bus = await busFor(i);
      buses.push(bus);
      servers.push(
        await startServer(
          { port: 0, host: '127.0.0.1', dataDir: join(dir, `node${i}`), logLevel: 'silent', auth: { secrets: [secret] }, session: { pollIntervalMs: 200 } },
          { store, bus },
        ),
      );
    }
  } catch (err) {
    await close();
    throw err;
  }
  return {
    nodes: servers.map((s) => s.wsUrl),
    token: (user, device) => mintToken({ secret, user, device }),
    ready: async (i) => buses[i]!.healthy(),
    close,
  };
}

describe('three nodes in one process over one in-memory bus', () => {
  let cluster: InProcessCluster;
  before(async () => {
    const bus = new MemoryBus();
    cluster = await startCluster(async () => bus);
  });
  after(() => cluster.close());

  it('alice on node 1 reaches bob on node 3 live', () => crossNodeLive(cluster));
  it('bob moves from node 3 to node 2 mid-stream: nothing lost, nothing seen twice', () => moveMidStream(cluster));
  it('the move at the wire level: acked messages are not resent, the rest are', () => moveMidStreamRaw(cluster));
});

describe('three nodes in one process, each with its own RedisBus', () => {
  let cluster: InProcessCluster;
  before(async () => {
    const prefix = uniquePrefix();
    cluster = await startCluster(() => openRedisBus({ url: SHARED_REDIS, prefix }));
  });
  after(() => cluster.close());

  it('alice on node 1 reaches bob on node 3 live', () => crossNodeLive(cluster));
  it('bob moves from node 3 to node 2 mid-stream: nothing lost, nothing seen twice', () => moveMidStream(cluster));
  it('the move at the wire level: acked messages are not resent, the rest are', () => moveMidStreamRaw(cluster));
});

describe('three nodes in one process, each with its own RedisClusterBus on a 3-master Redis Cluster', () => {
  let redis: RedisClusterHandle | undefined;
  let cluster: InProcessCluster | undefined;
  before(async () => {
    redis = await startRedisCluster({ masters: 3, nodeTimeoutMs: 1000 });
    const url = redis.url(uniquePrefix());
    cluster = await startCluster(() => openRedisClusterBus({ url, reconnectMaxDelayMs: 200, pingIntervalMs: 500, slotsRefreshIntervalMs: 500 }));
  });
  after(async () => {
    await cluster?.close();
    await redis?.dispose();
  });

  it('alice on node 1 reaches bob on node 3 live', () => crossNodeLive(cluster!));
  it('bob moves from node 3 to node 2 mid-stream: nothing lost, nothing seen twice', () => moveMidStream(cluster!));
  it('the move at the wire level: acked messages are not resent, the rest are', () => moveMidStreamRaw(cluster!));
  it('a master SIGKILLed: sends are delivered by polling; restarted: live wake-ups resume', () =>
    redisOutage(
      cluster!,
      {
        stop: () => redis!.kill(1),
        start: async () => {
          await redis!.restart(1);
          await redis!.waitOk();
        },
      },
      (i) => cluster!.ready(i),
      3,
    ));
});
