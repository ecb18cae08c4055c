/**
 * The gateway tests' server (test/gateway/helpers.ts) as the ops tests use it: its admin and
 * send keys at hand, a GET with the admin key, and the sweeper on at its default interval.
 */
import { RetentionSchema } from '../../src/core/config.js';
import type { ServerConfigInput } from '../../src/gateway/config.js';
import type { RunningServer, StartOptions } from '../../src/server/compose.js';
import { ADMIN_KEY, SEND_KEY, startTestServer } from '../gateway/helpers.js';

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

const SWEEP_DEFAULT_MS = RetentionSchema.parse({}).sweepIntervalMs;

export async function startOpsServer(config: ServerConfigInput = {}, options: StartOptions = {}): Promise<OpsServer> {
  const retention = { sweepIntervalMs: SWEEP_DEFAULT_MS, ...config.postOffice?.retention };
  const server = await startTestServer({ ...config, postOffice: { ...config.postOffice, retention } }, options);
  return {
    server,
    dataDir: server.dataDir,
    adminKey: ADMIN_KEY,
    sendKey: SEND_KEY,
    token: (user, device) => server.token(user, device),
    async get(path, key = ADMIN_KEY) {
      const res = await fetch(server.url + path, { headers: key === null ? {} : { authorization: `Bearer ${key}` } });
      return { status: res.status, text: await res.text(), type: res.headers.get('content-type') };
    },
    close: () => server.stop(),
  };
}
