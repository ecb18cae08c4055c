/**
 * Gateway nodes in one process sharing one store, for the feature tests: over one
 * in-memory bus or each node with its own RedisBus on the machine's Redis (unique prefix).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
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
import type { Cluster } from '../multinode/scenarios.js';

export interface FeatureCluster extends Cluster {
  readonly servers: readonly RunningServer[];
  readonly store: MailboxStore;
  close(): Promise<void>;
}

export type BusKind = 'memory' | 'redis';

export async function startFeatureCluster(kind: BusKind, nodes = 3, config: ServerConfigInput = {}): Promise<FeatureCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'pobox-features-'));
  const secret = randomBytes(32).toString('base64url');
  const store = await openStore({ engine: 'lmdb', path: join(dir, 'lmdb') });
  const shared = new MemoryBus();
  const prefix = uniquePrefix();
  const buses: Bus[] = [];
  const servers: RunningServer[] = [];
  const close = async (): Promise<void> => {
    await Promise.allSettled(servers.map((s) => s.close()));
    await Promise.allSettled([...new Set(buses)].map((b) => b.close()));
    await store.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < nodes; i++) {
      const bus = kind === 'memory' ? shared : await openRedisBus({ url: SHARED_REDIS, prefix });
      buses.push(bus);
      servers.push(
        await startServer(
          { port: 0, host: '127.0.0.1', dataDir: join(dir, `node${i}`), logLevel: 'silent', ...config, auth: { secrets: [secret] }, session: { pollIntervalMs: 200 } },
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
    close,
  };
}
