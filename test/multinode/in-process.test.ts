/**
 * Three gateway nodes in one process sharing one lmdb store: first over one in-memory
 * bus (the nodes' logic alone), then each node with its own RedisBus on the machine's
 * Redis (the real wake-up path, still without child processes), then each node with its
 * own RedisClusterBus on a local 3-master Redis Cluster (sharded pub/sub), including a
 * master SIGKILLed and restarted.
 */
import { after, before, describe, it } from 'node:test';
import { openRedisClusterBus } from '../../src/bus/redis-cluster.js';
import { uniquePrefix } from '../bus/bus-helpers.js';
import { startRedisCluster, type RedisClusterHandle } from '../../tools/redis-cluster.js';
import { busesOf, startInProcessCluster, type InProcessCluster } from './in-process-cluster.js';
import { crossNodeLive, moveMidStream, moveMidStreamRaw, redisOutage } from './scenarios.js';

describe('three nodes in one process over one in-memory bus', () => {
  let cluster: InProcessCluster;
  before(async () => {
    cluster = await startInProcessCluster(busesOf('memory'));
  });
  after(() => cluster.close());

  it('alice on node 1 reaches bob on node 3 live', () => crossNodeLive(cluster));
  it('bob moves from node 3 to node 2 mid-stream: nothing lost, nothing seen twice', () => moveMidStream(cluster));
  it('the move at the wire level: acked messages are not resent, the rest are', () => moveMidStreamRaw(cluster));
});

describe('three nodes in one process, each with its own RedisBus', () => {
  let cluster: InProcessCluster;
  before(async () => {
    cluster = await startInProcessCluster(busesOf('redis'));
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
    cluster = await startInProcessCluster(() => openRedisClusterBus({ url, reconnectMaxDelayMs: 200, pingIntervalMs: 500, slotsRefreshIntervalMs: 500 }));
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
