/**
 * Three `pobox serve` processes sharing one DynamoDB Local and one Redis, as in
 * production: cross-node delivery, a device moving between nodes mid-stream, a Redis
 * outage, and a node SIGKILLed while its devices receive (last: it leaves two nodes).
 *
 * Redis here is a private redis-server (random loopback port, no persistence) so the
 * outage test can stop it without disturbing the machine's shared Redis.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDynamoDbLocal, type DynamoDbLocal } from '../../tools/dynamodb-local.js';
import { startRedisServer, type RedisServer } from '../../tools/redis-server.js';
import { uniquePrefix } from '../bus/bus-helpers.js';
import { startProcessCluster, type ProcessCluster } from './process-cluster.js';
import { crossNodeLive, moveMidStream, moveMidStreamRaw, nodeKilledWhileReceiving, redisOutage } from './scenarios.js';

describe('three pobox serve processes over DynamoDB Local and Redis', () => {
  let dir: string;
  let ddb: DynamoDbLocal | undefined;
  let redis: RedisServer | undefined;
  let cluster: ProcessCluster | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pobox-multinode-'));
    // Both started together; if one fails the other is still kept, so after() removes it.
    const [d, r] = await Promise.allSettled([startDynamoDbLocal(), startRedisServer()]);
    if (d.status === 'fulfilled') ddb = d.value;
    if (r.status === 'fulfilled') redis = r.value;
    if (d.status === 'rejected') throw d.reason;
    if (r.status === 'rejected') throw r.reason;
    if (!ddb || !redis) throw new Error('unreachable: a started service is missing');
    const table = await ddb.newTable({ ttl: true });
    cluster = await startProcessCluster({
      nodes: 3,
      dir,
      dynamodbEndpoint: ddb.endpoint,
      dynamodbTable: table,
      bus: `${redis.url}/0?prefix=${encodeURIComponent(uniquePrefix())}`,
      pollIntervalMs: 250,
    });
  });

  after(async () => {
    await cluster?.close();
    await Promise.allSettled([ddb?.stop(), redis?.dispose()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('alice on node 1 reaches bob on node 3 live', () => crossNodeLive(cluster!));

  it('bob moves from node 3 to node 2 mid-stream: nothing lost, nothing seen twice', () => moveMidStream(cluster!));

  it('the move at the wire level: acked messages are not resent, the rest are', () => moveMidStreamRaw(cluster!));

  it('Redis down: sends are delivered by polling; Redis back: live wake-ups resume', () =>
    redisOutage(cluster!, { stop: () => redis!.stop(), start: () => redis!.start() }, (i) => cluster!.ready(i), 3));

  it('a node SIGKILLed while its devices receive: they continue on the others, nothing lost', () => nodeKilledWhileReceiving(cluster!, (i) => cluster!.kill(i)));
});
