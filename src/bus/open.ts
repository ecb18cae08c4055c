/**
 * Open the configured bus, next to the store's factory (src/store/open.ts):
 *
 *   memory                                   the single-node bus (in this process)
 *   redis://host:port[/db][?prefix=...]      one Redis server, classic pub/sub
 *   redis-cluster://host:port,host:port[?prefix=...]   Redis Cluster, sharded pub/sub
 *
 * (rediss:// and rediss-cluster:// for TLS.) The Redis buses load ioredis only when
 * asked for, so a single node never does.
 */
import { PoboxError } from '../core/errors.js';
import type { Bus } from './contract.js';
import { MemoryBus } from './memory.js';
import type { BusLogger } from './redis-link.js';
import { parseRedisBusOptions, parseRedisClusterBusOptions, redactUrl } from './redis-options.js';

export type BusKind = 'memory' | 'redis' | 'redis-cluster';

/** Which bus a spec names, or BAD_REQUEST (field `bus`) saying what is wrong. No connection is made. */
export function checkBusSpec(spec: string): BusKind {
  const wrap = (err: unknown): never => {
    const why = err instanceof PoboxError ? err.message : String(err);
    throw new PoboxError('BAD_REQUEST', `invalid bus "${redactUrl(spec)}": ${why}`, { field: 'bus', cause: err });
  };
  if (spec === 'memory') return 'memory';
  if (/^rediss?-cluster:\/\//.test(spec)) {
    try {
      parseRedisClusterBusOptions({ url: spec });
    } catch (err) {
      wrap(err);
    }
    return 'redis-cluster';
  }
  if (/^rediss?:\/\//.test(spec)) {
    try {
      parseRedisBusOptions({ url: spec });
    } catch (err) {
      wrap(err);
    }
    return 'redis';
  }
  throw new PoboxError('BAD_REQUEST', `invalid bus "${redactUrl(spec)}": must be "memory", a redis:// URL or a redis-cluster:// URL`, { field: 'bus' });
}

/** The bus a spec names, connected (UNAVAILABLE if its Redis cannot be reached at start). */
export async function openBus(spec: string, logger?: BusLogger): Promise<Bus> {
  const kind = checkBusSpec(spec);
  const extra = logger ? { logger } : {};
  switch (kind) {
    case 'memory':
      return new MemoryBus();
    case 'redis': {
      const { openRedisBus } = await import('./redis.js');
      return openRedisBus({ ...extra, url: spec });
    }
    case 'redis-cluster': {
      const { openRedisClusterBus } = await import('./redis-cluster.js');
      return openRedisClusterBus({ ...extra, url: spec });
    }
  }
}
