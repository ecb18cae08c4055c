/** A real pobox server on a random loopback port and a fresh data dir, with API keys for the ops tests. */
import { randomBytes } from 'node:crypto';
import { mintToken } from '../../src/gateway/auth.js';
import type { ServerConfigInput } from '../../src/gateway/config.js';
import { startServer, type RunningServer, type StartOptions } from '../../src/server/compose.js';
import { tempDir } from '../support/temp-dir.js';

export interface OpsServer {
  server: RunningServer;
  dataDir: string;
  adminKey: string;
  sendKey: string;
  token(user: string, device: string): Promise<string>;
  /** GET a path with the admin key (or `key`); returns status and text. */
  get(path: string, key?: string | null): Promise<{ status: number; text: string; type: string | null }>;
  close(): Promise<void>;
}

export async function startOpsServer(config: ServerConfigInput = {}, options: StartOptions = {}): Promise<OpsServer> {
  const dir = tempDir('pobox-ops-server-');
  const secret = randomBytes(32).toString('hex');
  const adminKey = `admin-${randomBytes(16).toString('hex')}`;
  const sendKey = `send-${randomBytes(16).toString('hex')}`;
  const server = await startServer(
    {
      port: 0,
      host: '127.0.0.1',
      dataDir: dir.path,
      logLevel: 'silent',
      ...config,
      auth: {
        secrets: [secret],
        apiKeys: [
          { key: adminKey, name: 'ops-admin', scopes: ['admin'] },
          { key: sendKey, name: 'ops-backend', scopes: ['send'] },
        ],
        ...(config.auth ?? {}),
      },
    },
    options,
  );
  return {
    server,
    dataDir: dir.path,
    adminKey,
    sendKey,
    token: (user, device) => mintToken({ secret, user, device, ttlSeconds: 600 }),
    async get(path, key = adminKey) {
      const res = await fetch(server.url + path, { headers: key === null ? {} : { authorization: `Bearer ${key}` } });
      return { status: res.status, text: await res.text(), type: res.headers.get('content-type') };
    },
    async close() {
      await server.close();
      await dir.remove();
    },
  };
}
