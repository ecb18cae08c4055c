/** Small helpers for the bus tests: waiting on conditions, collecting wake-ups, a TCP cut-off. */
import { randomUUID } from 'node:crypto';
import { createServer, Socket, type Server } from 'node:net';
import type { Wake } from '../../src/bus/contract.js';

export const SHARED_REDIS = 'redis://127.0.0.1:6379';

/** A channel namespace no other test uses, so tests can share the machine's Redis. */
export function uniquePrefix(): string {
  return `pobox-test:${randomUUID().slice(0, 8)}:`;
}

import { waitFor } from '../support/wait.js';

export { waitFor };

/** Collects wake-ups for one handler and lets a test wait for a given one. */
export class WakeLog {
  readonly wakes: Wake[] = [];
  readonly handler = (w: Wake): void => {
    this.wakes.push(w);
  };
  seqs(): number[] {
    return this.wakes.map((w) => w.seq);
  }
  has(seq: number): boolean {
    return this.wakes.some((w) => w.seq === seq);
  }
  waitSeq(seq: number, timeoutMs = 10_000): Promise<Wake> {
    return waitFor(() => this.has(seq), `wake seq ${seq}`, timeoutMs).then(() => this.wakes.find((w) => w.seq === seq)!);
  }
}

/**
 * A loopback TCP relay in front of a Redis, so a test can cut one client off (close its
 * sockets and refuse new ones) while others keep talking to the same Redis.
 */
export class TcpRelay {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly targetPort: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async open(): Promise<void> {
    const server = createServer((client) => {
      const upstream = new Socket();
      this.sockets.add(client).add(upstream);
      const drop = (): void => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      upstream.connect(this.targetPort, '127.0.0.1', () => {
        client.pipe(upstream);
        upstream.pipe(client);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    const addr = server.address();
    if (typeof addr === 'object' && addr) this.port = addr.port;
    this.server = server;
  }

  /** Close every relayed connection and stop accepting new ones (the port stays reserved by us). */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
