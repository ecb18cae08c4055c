/**
 * Open the configured bus, next to the store's factory (src/store/open.ts). `memory` is
 * the single-node bus; a redis:// URL loads src/bus/redis.ts (and ioredis) only when
 * asked for, so a single node never does.
 */
import { PoboxError } from '../core/errors.js';
import type { Bus } from './contract.js';
import { MemoryBus } from './memory.js';
import type { BusLogger } from './redis.js';

export async function openBus(spec: string, logger?: BusLogger): Promise<Bus> {
  if (spec === 'memory') return new MemoryBus();
  if (/^rediss?:\/\//.test(spec)) {
    const { createRedisBus } = await import('./redis.js');
    return createRedisBus(spec, logger ? { logger } : {});
  }
  throw new PoboxError('BAD_REQUEST', `invalid server config:\n  bus: "${spec}" must be "memory" or a redis:// URL`, { field: 'bus' });
}
