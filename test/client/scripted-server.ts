/**
 * A WebSocket server on 127.0.0.1 that speaks the pobox protocol by script, so client
 * tests can produce exact frame sequences (epoch changes, refusals, silence) that a
 * well-behaved gateway makes hard to reach. Integration tests use the real gateway.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ClientFrame, ServerFrame, WelcomeFrame } from '../../src/core/protocol.js';
import { waitFor } from './helpers.js';

export interface ScriptedConnection {
  socket: WebSocket;
  url: string;
  frames: ClientFrame[];
  send(frame: ServerFrame): void;
  welcome(over?: Partial<WelcomeFrame>): void;
  /** Wait for a frame of this type (the n-th one, 1-based) and return it. */
  next<T extends ClientFrame['type']>(type: T, n?: number): Promise<Extract<ClientFrame, { type: T }>>;
}

export class ScriptedServer {
  readonly connections: ScriptedConnection[] = [];
  private constructor(
    private readonly wss: WebSocketServer,
    readonly url: string,
  ) {}

  static async start(): Promise<ScriptedServer> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    const server = new ScriptedServer(wss, `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/ws`);
    wss.on('connection', (socket, req) => {
      const conn: ScriptedConnection = {
        socket,
        url: req.url ?? '',
        frames: [],
        send: (frame) => socket.send(JSON.stringify(frame)),
        welcome: (over = {}) =>
          conn.send({
            type: 'welcome',
            protocol: 1,
            user: 'bob',
            device: 'phone',
            epoch: 'e1',
            epochChanged: false,
            cursor: 0,
            lastSeq: 0,
            window: { messages: 256, bytes: 1 << 20 },
            heartbeatMs: 30_000,
            ...over,
          }),
        next: async (type, n = 1) => {
          let found: ClientFrame | undefined;
          await waitFor(() => (found = conn.frames.filter((f) => f.type === type)[n - 1]) !== undefined, `client frame ${type} #${n}`);
          return found as never;
        },
      };
      socket.on('message', (data) => conn.frames.push(JSON.parse(String(data)) as ClientFrame));
      server.connections.push(conn);
    });
    return server;
  }

  async connection(n: number): Promise<ScriptedConnection> {
    await waitFor(() => this.connections.length >= n, `connection #${n}`);
    return this.connections[n - 1]!;
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    await new Promise<void>((r) => this.wss.close(() => r()));
  }
}

export function message(seq: number, body = `m${seq}`): ServerFrame {
  return { type: 'message', seq, id: `id-${seq}`, from: 'alice', body, sentAt: 1, expiresAt: 2 };
}
