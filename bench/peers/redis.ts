/**
 * Redis as people use it for offline messages: a list per user, a counter per user for
 * the sequence number, both changed by one Lua script so a send is atomic and costs one
 * round trip. The server is our own, with AOF `appendfsync always`.
 */
import { Redis } from 'ioredis';
import { startDurableRedis, type DurableRedis } from './redis-server.js';
import type { Peer, PeerMessage } from './peer.js';

const SEND = `local s = redis.call('INCR', KEYS[1])
redis.call('RPUSH', KEYS[2], s .. '|' .. ARGV[1] .. '|' .. ARGV[2])
return s`;

// Messages are pushed in seq order, so the ones to drop are at the head of the list.
const DELETE_UP_TO = `local n = 0
while true do
  local v = redis.call('LINDEX', KEYS[1], 0)
  if not v then break end
  local s = tonumber(string.match(v, '^(%d+)|'))
  if s > tonumber(ARGV[1]) then break end
  redis.call('LPOP', KEYS[1])
  n = n + 1
end
return n`;

type ScriptedRedis = Redis & {
  mbSend(seqKey: string, listKey: string, id: string, body: string): Promise<number>;
  mbDeleteUpTo(listKey: string, upTo: number): Promise<number>;
};

export async function openRedisPeer(): Promise<Peer> {
  const server: DurableRedis = await startDurableRedis();
  const redis = new Redis({ host: '127.0.0.1', port: server.port, lazyConnect: true, maxRetriesPerRequest: 1 }) as ScriptedRedis;
  await redis.connect();
  redis.defineCommand('mbSend', { numberOfKeys: 2, lua: SEND });
  redis.defineCommand('mbDeleteUpTo', { numberOfKeys: 1, lua: DELETE_UP_TO });
  const info = await redis.info('server');
  const version = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
  const aof = await redis.config('GET', 'appendfsync');
  return {
    name: 'Redis lists (AOF always)',
    version: `redis ${version}`,
    durability: `AOF with appendfsync=${String((aof as string[])[1])}: fsync'd before the reply (Redis batches the fsync per event-loop turn)`,
    notes: ['One ioredis connection; commands from all concurrent clients are pipelined on it. No dedupe by message id.'],
    async setup() {},
    async send(user, id, body) {
      return Number(await redis.mbSend(`seq:${user}`, `inbox:${user}`, id, body));
    },
    async fetch(user, afterSeq, limit): Promise<PeerMessage[]> {
      // Acked messages are deleted, so the pending page is the head of the list.
      const items = await redis.lrange(`inbox:${user}`, 0, limit - 1);
      const out: PeerMessage[] = [];
      for (const v of items) {
        const a = v.indexOf('|');
        const b = v.indexOf('|', a + 1);
        const seq = Number(v.slice(0, a));
        if (seq > afterSeq) out.push({ seq, id: v.slice(a + 1, b) });
      }
      return out;
    },
    async deleteUpTo(user, upToSeq) {
      await redis.mbDeleteUpTo(`inbox:${user}`, upToSeq);
    },
    async close() {
      redis.disconnect();
      await server.stop();
    },
  };
}
