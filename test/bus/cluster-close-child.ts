/**
 * Child of redis-cluster.test.ts: opens a RedisClusterBus on the given cluster URL, closes
 * it at the moment ioredis has a slots refresh (started by its refresh interval) in flight,
 * and then must exit by itself: nothing of a closed bus may keep the process alive.
 * Usage: `node --import tsx cluster-close-child.ts <redis-cluster:// url>`. Prints "closed".
 */
import { openRedisClusterBus } from '../../src/bus/redis-cluster.js';

const url = process.argv[2];
if (!url) throw new Error('usage: cluster-close-child.ts <redis-cluster:// url>');
const bus = await openRedisClusterBus({ url, slotsRefreshIntervalMs: 100, connectTimeoutMs: 10_000 });
// ioredis internals, read only to hit the race: whether a slots refresh is running now.
const cluster = (bus as unknown as { cluster: { isRefreshing?: boolean } }).cluster;
const deadline = Date.now() + 10_000;
while (!cluster.isRefreshing && Date.now() < deadline) await new Promise((r) => setImmediate(r));
if (!cluster.isRefreshing) throw new Error('no slots refresh seen in flight within 10 s');
await bus.close();
process.stdout.write('closed\n');
