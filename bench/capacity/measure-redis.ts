/**
 * What a wake-up and a subscription cost a Redis Cluster master, measured on a local
 * 3-master cluster: redis-server CPU time (from /proc) per SPUBLISH delivered to one
 * subscribed node, and used_memory per sharded subscription. Both go into the capacity
 * model's Redis shard count.
 */
import { Redis } from 'ioredis';
import { openRedisClusterBus } from '../../src/bus/redis-cluster.js';
import type { StoredMessage } from '../../src/core/types.js';
import { startRedisCluster, type RedisClusterHandle } from '../../tools/redis-cluster.js';
import { onCleanup } from '../lib/cleanup.js';
import { cpuSeconds } from '../lib/proc.js';

export interface RedisMeasurement {
  wakes: number;
  subscriptions: number;
  bodyBytes: number;
  /** redis-server CPU (user + system) over all masters, per wake-up. */
  cpuUsPerWake: number;
  bytesPerSubscription: number;
  /** Wall-clock rate of the run (one publisher, one subscriber, shared machine): not a capacity figure. */
  wakesPerSecondWall: number;
}

const cpuUs = (pid: number): number => cpuSeconds(pid) * 1e6;

async function usedMemory(cluster: RedisClusterHandle): Promise<number> {
  let total = 0;
  for (const n of cluster.nodes) {
    const r = new Redis({ host: '127.0.0.1', port: n.port, lazyConnect: true });
    await r.connect();
    const info = await r.info('memory');
    r.disconnect();
    total += Number(/used_memory:(\d+)/.exec(info)![1]);
  }
  return total;
}

export async function measureRedis(opts: { subscriptions: number; wakes: number; bodyBytes: number }): Promise<RedisMeasurement> {
  const cluster = await startRedisCluster({ masters: 3 });
  onCleanup('redis-cluster', () => cluster.dispose());
  const url = cluster.url('cap:');
  const sub = await openRedisClusterBus({ url });
  const pub = await openRedisClusterBus({ url });
  onCleanup('buses', async () => {
    await Promise.allSettled([sub.close(), pub.close()]);
  });
  const users = Array.from({ length: opts.subscriptions }, (_, i) => `u${i}`);
  let received = 0;
  const memBefore = await usedMemory(cluster);
  for (let i = 0; i < users.length; i += 1000) await Promise.all(users.slice(i, i + 1000).map((u) => sub.subscribe(u, () => void received++)));
  const memAfter = await usedMemory(cluster);

  const body = 'x'.repeat(opts.bodyBytes);
  const pids = cluster.nodes.map((n) => n.pid!);
  const cpuBefore = pids.reduce((a, p) => a + cpuUs(p), 0);
  const started = performance.now();
  for (let i = 0; i < opts.wakes; i += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, opts.wakes - i) }, (_, k) => {
        const seq = i + k + 1;
        const to = users[seq % users.length]!;
        const message: StoredMessage = { seq, id: `m${seq}`, from: 'alice', to, body, bytes: body.length, sentAt: Date.now(), expiresAt: Date.now() + 60_000 };
        return pub.publish({ user: to, epoch: 'e', seq, message });
      }),
    );
  }
  const deadline = Date.now() + 60_000;
  while (received < opts.wakes && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const seconds = (performance.now() - started) / 1000;
  const cpuAfter = pids.reduce((a, p) => a + cpuUs(p), 0);
  if (received < opts.wakes) throw new Error(`only ${received} of ${opts.wakes} wake-ups arrived`);
  return {
    wakes: opts.wakes,
    subscriptions: opts.subscriptions,
    bodyBytes: opts.bodyBytes,
    cpuUsPerWake: (cpuAfter - cpuBefore) / opts.wakes,
    bytesPerSubscription: (memAfter - memBefore) / opts.subscriptions,
    wakesPerSecondWall: opts.wakes / seconds,
  };
}
