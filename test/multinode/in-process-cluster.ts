/**
 * The one in-process cluster of the tests: three gateway nodes (or `nodes`) in this process
 * sharing one lmdb store, each with the bus `busFor(i)` gives it (one MemoryBus for all, a
 * RedisBus each on the machine's Redis, a RedisClusterBus each). The multi-node scenarios
 * (scenarios.ts) and the feature tests run on it.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Bus } from '../../src/bus/contract.js';
import { MemoryBus } from '../../src/bus/memory.js';
import { openRedisBus } from '../../src/bus/redis.js';
import { mintToken } from '../../src/gateway/auth.js';
import type { ServerConfigInput } from '../../src/gateway/config.js';
import { startServer, type RunningServer } from '../../src/server/compose.js';
import type { MailboxStore } from '../../src/store/contract.js';
import { openStore } from '../../src/store/open.js';
import { SHARED_REDIS, uniquePrefix } from '../bus/bus-helpers.js';
import { tempDir } from '../support/temp-dir.js';
import type { Cluster } from './scenarios.js';

export interface InProcessCluster extends Cluster {
  readonly servers: readonly RunningServer[];
  readonly store: MailboxStore;
  /** True while node `i`'s bus reports healthy. */
  ready(i: number): Promise<boolean>;
  close(): Promise<void>;
}

export async function startInProcessCluster(busFor: (node: number) => Promise<Bus>, opts: { nodes?: number; config?: ServerConfigInput } = {}): Promise<InProcessCluster> {
  const dir = tempDir('pobox-cluster-');
  const secret = randomBytes(32).toString('base64url');
  const store = await openStore({ engine: 'lmdb', path: join(dir.path, 'lmdb') });
  const buses: Bus[] = [];
  const servers: RunningServer[] = [];
  const close = async (): Promise<void> => {
    await Promise.allSettled(servers.map((s) => s.close()));
    await Promise.allSettled([...new Set(buses)].map((b) => b.close()));
    // Closing a post office closes its store, so the shared store may be closed already.
    await store.close().catch(() => undefined);
    await dir.remove();
  };
  try {
    for (let i = 0; i < (opts.nodes ?? 3); i++) {
      const bus = await busFor(i);
      buses.push(bus);
      servers.push(
        await startServer(
          { port: 0, host: '127.0.0.1', dataDir: join(dir.path, `node${i}`), logLevel: 'silent', ...opts.config, auth: { secrets: [secret] }, session: { pollIntervalMs: 200 } },
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
    servers,
    store,
    token: (user, device) => mintToken({ secret, user, device }),
    ready: async (i) => buses[i]!.healthy(),
    close,
  };
}

export type BusKind = 'memory' | 'redis';

/** Buses of a kind for startInProcessCluster: one MemoryBus shared by every node, or a RedisBus each on the machine's Redis under one fresh prefix. */
export function busesOf(kind: BusKind): (node: number) => Promise<Bus> {
  if (kind === 'memory') {
    const shared = new MemoryBus();
    return async () => shared;
  }
  const prefix = uniquePrefix();
  return () => openRedisBus({ url: SHARED_REDIS, prefix });
}
