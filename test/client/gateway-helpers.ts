/** Start a real gateway in-process on 127.0.0.1 with a fresh data dir, and mint tokens for it. */
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import { connect, type ClientOptions, type PoboxClient } from '../../src/client/index.js';
import { mintToken } from '../../src/gateway/auth.js';
import type { ServerConfigInput } from '../../src/gateway/config.js';
import { startServer, type RunningServer, type StartOptions } from '../../src/server/compose.js';
import { tempDir as newTempDir } from '../support/temp-dir.js';

export interface TestGateway {
  server: RunningServer;
  secret: string;
  dataDir: string;
  token(user: string, device: string): Promise<string>;
  /** An SDK client for user/device on this server (closed by `close()`). */
  client(user: string, device: string, options?: ClientOptions, urls?: string[]): Promise<PoboxClient>;
  close(): Promise<void>;
}

/** Track everything a test opens so one call tears it all down. */
export class Resources {
  private readonly closers: (() => unknown)[] = [];
  add(fn: () => unknown): void {
    this.closers.push(fn);
  }
  async closeAll(): Promise<void> {
    while (this.closers.length > 0) await this.closers.pop()!();
  }
}

/** A temp dir removed with the test's other resources. */
export function tempDir(res: Resources): string {
  const dir = newTempDir('pobox-client-test-');
  res.add(dir.remove);
  return dir.path;
}

export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

export async function startGateway(res: Resources, opts: { secret?: string; dataDir?: string; config?: ServerConfigInput; start?: StartOptions } = {}): Promise<TestGateway> {
  const secret = opts.secret ?? newSecret();
  const dataDir = opts.dataDir ?? tempDir(res);
  const server = await startServer({ port: 0, dataDir, logLevel: 'silent', auth: { secrets: [secret] }, ...opts.config }, opts.start);
  const clients: PoboxClient[] = [];
  const gw: TestGateway = {
    server,
    secret,
    dataDir,
    token: (user, device) => mintToken({ secret, user, device }),
    client: async (user, device, options = {}, urls = [server.wsUrl]) => {
      const c = connect(urls, await gw.token(user, device), { WebSocket, backoffBaseMs: 20, backoffMaxMs: 200, ...options });
      clients.push(c);
      return c;
    },
    close: async () => {
      for (const c of clients.splice(0)) c.close();
      await server.close();
    },
  };
  res.add(() => gw.close());
  return gw;
}

/** The server side of a user's device connections on this node. */
export function sessionsOf(server: RunningServer, user: string, device?: string) {
  return server.sessions().filter((s) => s.user === user && (device === undefined || s.device === device));
}
