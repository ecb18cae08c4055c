/**
 * Open the configured bus. `memory` is the single-node bus; a redis:// URL loads
 * src/bus/redis.ts (and ioredis) only when asked for, so a single node never does.
 */
import { PoboxError } from '../core/errors.js';
import type { Bus } from '../bus/contract.js';
import { MemoryBus } from '../bus/memory.js';
import type { Logger } from './logger.js';

export async function openBus(spec: string, logger?: Logger): Promise<Bus> {
  if (spec === 'memory') return new MemoryBus();
  if (/^rediss?:\/\//.test(spec)) {
    const { createRedisBus } = await import('../bus/redis.js');
    return createRedisBus(spec, logger ? { logger: logger.child({ component: 'bus' }) } : {});
  }
  throw new PoboxError('BAD_REQUEST', `invalid server config:\n  bus: "${spec}" must be "memory" or a redis:// URL`, { field: 'bus' });
}
