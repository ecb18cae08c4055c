/**
 * The many-node setup of issue 10 (bench/many-node.ts measures it): four `pobox serve`
 * processes over DynamoDB Local and a local 3-master Redis Cluster (the cluster bus,
 * sharded pub/sub). Asserted here: devices spread over the nodes and moved between them
 * mid-stream get every message once per connection, in order, nothing lost; each node
 * exports the capacity DynamoDB reported for its requests.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDynamoDbLocal, type DynamoDbLocal } from '../../tools/dynamodb-local.js';
import { startRedisCluster, type RedisClusterHandle } from '../../tools/redis-cluster.js';
import { uniquePrefix } from '../bus/bus-helpers.js';
import { parseProm, sample } from '../support/prom-text.js';
import { startProcessCluster, type ProcessCluster } from './process-cluster.js';
import { crossNodeLive, spreadAndMoved } from './scenarios.js';

const NODES = 4;

describe('four pobox serve processes over DynamoDB Local and the Redis Cluster bus', () => {
  let dir: string;
  let ddb: DynamoDbLocal | undefined;
  let redis: RedisClusterHandle | undefined;
  let cluster: ProcessCluster | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pobox-cluster-nodes-'));
    // Both started together; if one fails the other is still kept, so after() removes it.
    const [d, r] = await Promise.allSettled([startDynamoDbLocal(), startRedisCluster({ masters: 3 })]);
    if (d.status === 'fulfilled') ddb = d.value;
    if (r.status === 'fulfilled') redis = r.value;
    if (d.status === 'rejected') throw d.reason;
    if (r.status === 'rejected') throw r.reason;
    if (!ddb || !redis) throw new Error('unreachable: a started service is missing');
    cluster = await startProcessCluster({
      nodes: NODES,
      dir,
      dynamodbEndpoint: ddb.endpoint,
      dynamodbTable: await ddb.newTable({ ttl: true }),
      bus: redis.url(uniquePrefix()),
      pollIntervalMs: 250,
    });
  });

  after(async () => {
    await cluster?.close();
    await Promise.allSettled([ddb?.stop(), redis?.dispose()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('alice on node 1 reaches bob on node 3 live, through the cluster bus', () => crossNodeLive(cluster!));

  it('devices spread over the nodes and moved mid-stream: each message once per connection, in order, none lost', () => spreadAndMoved(cluster!));

  it('every node exports the capacity units and requests DynamoDB reported for it', async () => {
    for (let i = 0; i < NODES; i++) {
      const m = parseProm(await cluster!.metrics(i));
      // Every node served a device (registration, reads, acks): it wrote and read.
      assert.ok((sample(m, 'pobox_store_capacity_units_total', { kind: 'write' }) ?? 0) > 0, `node ${i + 1}: write units`);
      assert.ok((sample(m, 'pobox_store_capacity_units_total', { kind: 'read' }) ?? 0) > 0, `node ${i + 1}: read units`);
      assert.ok((sample(m, 'pobox_store_requests_total') ?? 0) > 0, `node ${i + 1}: requests`);
    }
  });
});
