/**
 * pobox as a client sees it: the gateway (`pobox serve`, lmdb engine) in its own process,
 * everything over WebSocket on 127.0.0.1, the way a device uses it:
 *
 *  - send: a `send` frame through the SDK, answered by `accepted` once durable. The
 *    workload's concurrent sends share SENDER_CONNECTIONS connections of one sender.
 *  - fetch: the recipient's device connects (token in the URL), says hello and reads
 *    messages until it has the page, then closes without acking: a reconnect that reads
 *    one page. Each fetch therefore includes a TCP connect and a WebSocket upgrade.
 *  - delete up to a seq: the device connects, says hello, acks `upTo` and waits for
 *    `acked` (the cursor is durable and the acked messages are deleted), then closes.
 *
 * Operations on one user run one at a time (a device has one connection; a second
 * replaces the first); different users overlap up to the workload's concurrency.
 *
 * Redis is measured on one open connection per op kind; here only sends run on open
 * connections, because in pobox reading and acking belong to the recipient's own
 * device connection. That is stated beside the numbers.
 */
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import { connect, type PoboxClient } from '../../src/client/index.js';
import type { ServerFrame } from '../../src/core/protocol.js';
import { mintToken } from '../../src/gateway/auth.js';
import type { ServerConfigInput } from '../../src/gateway/config.js';
import { startServerChild, type ServerHandle } from '../gateway/server-process.js';
import { tempDir, type TempDir } from '../lib/temp.js';
import { packageVersion } from '../lib/versions.js';
import type { Peer, PeerMessage } from './peer.js';

const DEVICE = 'phone';
const SENDER_CONNECTIONS = 4;

export async function openPoboxGatewayPeer(): Promise<Peer> {
  const dir: TempDir = tempDir('peers-pobox-gateway');
  const secret = randomBytes(32).toString('base64url');
  const config: ServerConfigInput = {
    host: '127.0.0.1',
    port: 0,
    dataDir: dir.path,
    logLevel: 'warn',
    auth: { secrets: [secret] },
    // One load generator address, thousands of connections and sends: the abuse limits would measure themselves.
    limits: { sendRate: { perSecond: 1e7, burst: 1e7 }, connectRate: { perSecond: 1e6, burst: 1e6 } },
    postOffice: { retention: { sweepIntervalMs: 0 } },
  };
  let server: ServerHandle | undefined;
  const senders: PoboxClient[] = [];
  const tokens = new Map<string, string>();
  let next = 0;
  try {
    server = await startServerChild(config);
    for (let i = 0; i < SENDER_CONNECTIONS; i++) {
      const c = connect(server.wsUrl, await mintToken({ secret, user: 'sender', device: `d${i}`, ttlSeconds: 3600 }), { WebSocket });
      c.on('error', () => undefined); // a failed send rejects its own promise
      senders.push(c);
      await c.ready();
    }
  } catch (err) {
    senders.forEach((c) => c.close());
    await server?.stop();
    await dir.remove();
    throw err;
  }
  const srv = server;
  const oneAtATime = perUser();
  const url = (user: string): string => `${srv.wsUrl}?token=${encodeURIComponent(tokens.get(user)!)}`;
  return {
    name: 'pobox (gateway, WebSocket)',
    version: `pobox 0.1.0 gateway (ws ${packageVersion('ws')}), lmdb-js ${packageVersion('lmdb')}`,
    durability: "`accepted` is sent after the store's append is durable (fsync'd); concurrent sends share one commit",
    notes: [
      `Server in its own process; sends over ${SENDER_CONNECTIONS} open WebSocket connections (SDK); each fetch and each delete is a device connection of its own (connect, upgrade, hello, then the page or the ack and its durable answer), because reads and acks belong to the recipient's device.`,
      'Also does per-recipient dedupe by message id, quotas and an expiry index on every send; JWT-authenticated connections.',
    ],
    async setup(users) {
      // One device per user, registered from the oldest message (like the in-process row).
      // Not measured: a bounded number at a time, each retried (registering twice is a no-op).
      const register = async (u: string, token: string): Promise<void> => {
        for (let attempt = 1; ; attempt++) {
          try {
            const r = await fetch(`${srv.url}/v1/users/${u}/devices/${DEVICE}`, {
              method: 'PUT',
              headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
              body: JSON.stringify({ start: 'oldest' }),
            });
            if (r.status === 201 || r.status === 200) return;
            throw new Error(`HTTP ${r.status} ${await r.text()}`);
          } catch (err) {
            if (attempt >= 5) throw new Error(`registering ${u}: ${(err as Error).message}`);
            await new Promise((r) => setTimeout(r, 100 * attempt));
          }
        }
      };
      for (let i = 0; i < users.length; i += 50) {
        await Promise.all(
          users.slice(i, i + 50).map(async (u) => {
            const token = await mintToken({ secret, user: u, device: DEVICE, ttlSeconds: 3600 });
            tokens.set(u, token);
            await register(u, token);
          }),
        );
      }
    },
    async send(user, id, body) {
      const c = senders[next++ % senders.length]!;
      return (await c.send({ to: user, id, body })).seq;
    },
    async fetch(user, afterSeq, limit): Promise<PeerMessage[]> {
      return oneAtATime(user, () =>
        session(url(user), (_ws, frame, out, done) => {
          if (frame.type === 'message' && frame.seq > afterSeq) out.push({ seq: frame.seq, id: frame.id });
          if (out.length >= limit || frame.type === 'caughtUp') done(out.slice(0, limit));
        }),
      );
    },
    async deleteUpTo(user, upToSeq) {
      await oneAtATime(user, () =>
        session(url(user), (ws, frame, _out, done) => {
          if (frame.type === 'welcome') ws.send(JSON.stringify({ type: 'ack', upTo: upToSeq }));
          if (frame.type === 'acked' && frame.cursor >= upToSeq) done([]);
          if (frame.type === 'error') throw new Error(`ack refused: ${frame.code} ${frame.message}`);
        }),
      );
    },
    async close() {
      senders.forEach((c) => c.close());
      await srv.stop();
      await dir.remove();
    },
  };
}

type OnFrame = (ws: WebSocket, frame: ServerFrame, out: PeerMessage[], done: (page: PeerMessage[]) => void) => void;

/** One device connection: hello, hand each frame to `onFrame` until it calls done, then close. */
function session(url: string, onFrame: OnFrame): Promise<PeerMessage[]> {
  const ws = new WebSocket(url);
  const out: PeerMessage[] = [];
  return new Promise<PeerMessage[]>((resolve, reject) => {
    let finished = false;
    const finish = (err: Error | undefined, page: PeerMessage[] = []): void => {
      if (finished) return;
      finished = true;
      ws.close();
      if (err) reject(err);
      else resolve(page);
    };
    ws.on('open', () => ws.send('{"type":"hello","protocol":1}'));
    ws.on('error', (err) => finish(err));
    ws.on('close', (code) => finish(new Error(`connection closed with ${code} before the answer`)));
    ws.on('message', (data) => {
      try {
        onFrame(ws, JSON.parse(String(data)) as ServerFrame, out, (page) => finish(undefined, page));
      } catch (err) {
        finish(err as Error);
      }
    });
  });
}

/**
 * A device has one connection at a time (a second one replaces the first with 4000), so
 * operations on the same user's device run one after the other; different users overlap.
 */
function perUser(): <T>(user: string, op: () => Promise<T>) => Promise<T> {
  const tails = new Map<string, Promise<unknown>>();
  return <T>(user: string, op: () => Promise<T>): Promise<T> => {
    const prev = tails.get(user) ?? Promise.resolve();
    const run = prev.then(op, op);
    // The caller sees the failure through `run`; the chain only needs to know it ended.
    const tail: Promise<void> = run.then(
      () => forget(),
      () => forget(),
    );
    const forget = (): void => {
      if (tails.get(user) === tail) tails.delete(user);
    };
    tails.set(user, tail);
    return run;
  };
}
