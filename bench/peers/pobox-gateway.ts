/**
 * pobox as a client sees it: the gateway (`pobox serve`, lmdb engine) in its own process,
 * everything over long-lived connections on 127.0.0.1, as Redis gets one long-lived
 * connection in its row:
 *
 *  - send: a `send` frame through the SDK over one of SENDER_CONNECTIONS open WebSocket
 *    connections of the sender, answered by `accepted` once durable.
 *  - fetch: the device's pull API, `GET /v1/messages?after=&limit=` with the device's
 *    token, over HTTP/1.1 keep-alive connections (at most one per concurrent client).
 *  - delete up to a seq: `POST /v1/ack {upTo}` with the device's token on the same
 *    keep-alive connections, answered once the cursor is durable and the acked messages
 *    are deleted.
 *
 * Why not the WebSocket for fetch and delete: a device's connection pushes its backlog
 * once, from its cursor; "read this page again" is not something a connected device asks
 * for, so a fetch over WebSocket means a new connection per fetch (connect, upgrade,
 * hello), which measures connection set-up rather than the store. The HTTP pull API is
 * the same read and the same ack the WebSocket session makes (PostOffice.read / ack),
 * each request verifying the device's token as a connection does.
 */
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { WebSocket } from 'ws';
import { connect, type PoboxClient } from '../../src/client/index.js';
import { mintToken } from '../../src/gateway/auth.js';
import type { ServerConfigInput } from '../../src/gateway/config.js';
import { startServerChild, type ServerHandle } from '../gateway/server-process.js';
import { tempDir, type TempDir } from '../lib/temp.js';
import { packageVersion } from '../lib/versions.js';
import type { Peer, PeerMessage } from './peer.js';

const DEVICE = 'phone';
const SENDER_CONNECTIONS = 4;

export async function openPoboxGatewayPeer(concurrency: number): Promise<Peer> {
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
  // Long-lived HTTP connections for the devices' reads and acks, one per concurrent client at most.
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  return {
    name: 'pobox (gateway: WebSocket sends, HTTP keep-alive reads/acks)',
    version: `pobox 0.1.0 gateway (ws ${packageVersion('ws')}), lmdb-js ${packageVersion('lmdb')}`,
    durability: "`accepted` is sent after the store's append is durable (fsync'd); concurrent sends share one commit",
    notes: [
      `Server in its own process; sends over ${SENDER_CONNECTIONS} open WebSocket connections (SDK); fetches (GET /v1/messages) and deletes (POST /v1/ack, durable before the answer) with each device's token over at most ${concurrency} HTTP keep-alive connections, the same ${concurrency} concurrent clients as every row. A fetch over WebSocket would be a new device connection per fetch (a connected device is pushed its backlog once), which measures connection set-up, not the store.`,
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
      const page = (await call(agent, srv.url, 'GET', `/v1/messages?after=${afterSeq}&limit=${limit}`, tokens.get(user)!)) as { messages: Array<{ seq: number; id: string }> };
      return page.messages.map((m) => ({ seq: m.seq, id: m.id }));
    },
    async deleteUpTo(user, upToSeq) {
      await call(agent, srv.url, 'POST', '/v1/ack', tokens.get(user)!, { upTo: upToSeq });
    },
    async close() {
      agent.destroy();
      senders.forEach((c) => c.close());
      await srv.stop();
      await dir.remove();
    },
  };
}

/** One HTTP request on a keep-alive connection of `agent`; resolves with the JSON answer, rejects on a non-2xx status. */
function call(agent: Agent, base: string, method: 'GET' | 'POST', path: string, token: string, body?: unknown): Promise<unknown> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { method, agent, headers: { authorization: `Bearer ${token}`, ...(payload ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if ((res.statusCode ?? 0) >= 300) reject(new Error(`${method} ${path}: HTTP ${res.statusCode} ${text.slice(0, 200)}`));
        else resolve(JSON.parse(text));
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}
