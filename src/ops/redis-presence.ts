/**
 * Cluster-wide presence for the wake-up hook, in the Redis the bus already uses.
 *
 * Each node writes, per connected device, a field of the user's hash
 * `<prefix>presence:<user>`: field `<device> <node>`, value the time (ms) until which
 * the entry holds. Fields are refreshed every `refreshMs` while the device stays
 * connected and removed when it disconnects; a node that dies stops refreshing, so its
 * entries lapse after `ttlMs` (readers ignore lapsed values; the key itself expires).
 *
 * `claim` makes "at most once per user per interval" hold across nodes: the first node
 * to SET `<prefix>wake:<user>` NX with the interval as expiry calls the hook.
 *
 * Only used when the wake-up hook is on and the bus is Redis, so a deployment without
 * the hook pays nothing.
 */
import { randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import type { DeviceId, UserId } from '../core/ids.js';
import type { TypedEmitter } from '../core/emitter.js';
import type { Presence } from '../postoffice/wakeup-hook.js';
import type { GatewayEvents } from '../gateway/events.js';
import { LocalPresence } from './presence.js';

export interface RedisPresenceOptions {
  /** ioredis connection URL (no pobox query parameters)... */
  url?: string;
  /** ...or the Redis Cluster's seed nodes (with the redis-cluster:// bus). */
  cluster?: { seeds: Array<{ host: string; port: number }>; username?: string | undefined; password?: string | undefined; tls?: boolean };
  prefix: string;
  /** How long an entry holds without a refresh. */
  ttlMs?: number;
  refreshMs?: number;
  /** This node's id in field names; random by default. */
  node?: string;
  /** A presence write or delete failed (logged once per burst and counted by the server). */
  onFailure?: (err: unknown) => void;
}

export class RedisPresence implements Presence {
  readonly node: string;
  private readonly local = new LocalPresence();
  private readonly redis: Redis | Cluster;
  private readonly ttlMs: number;
  private readonly timer: NodeJS.Timeout;
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly opts: RedisPresenceOptions) {
    this.node = opts.node ?? randomUUID().slice(0, 8);
    this.ttlMs = opts.ttlMs ?? 60_000;
    // Commands wait in ioredis's queue while Redis is away; presence is advisory, so a
    // failure only makes users look offline (an extra push), never loses a message.
    const options = { lazyConnect: false, maxRetriesPerRequest: 1, enableOfflineQueue: true };
    if (opts.cluster) {
      const { seeds, username, password, tls } = opts.cluster;
      const auth = { ...(username ? { username } : {}), ...(password ? { password } : {}), ...(tls ? { tls: {} } : {}) };
      this.redis = new Cluster(seeds, { lazyConnect: false, enableOfflineQueue: true, redisOptions: { ...auth, maxRetriesPerRequest: 1 } });
    } else {
      this.redis = new Redis(opts.url ?? 'redis://127.0.0.1:6379', options);
    }
    // Connection errors surface again as failed commands (reported through onFailure).
    this.redis.on('error', () => undefined);
    this.timer = setInterval(() => this.refreshAll(), opts.refreshMs ?? Math.floor(this.ttlMs / 3));
    this.timer.unref();
  }

  private key(user: UserId): string {
    return `${this.opts.prefix}presence:${user}`;
  }

  private field(device: DeviceId): string {
    return `${device} ${this.node}`;
  }

  private track(p: Promise<unknown>): void {
    const q = p.catch((err: unknown) => this.opts.onFailure?.(err));
    this.pending.add(q);
    // `q` never rejects: the write's failure is caught on the line above.
    q.then(
      () => this.pending.delete(q),
      () => undefined,
    );
  }

  private write(user: UserId, device: DeviceId): Promise<unknown> {
    const key = this.key(user);
    return this.redis
      .multi()
      .hset(key, this.field(device), String(Date.now() + this.ttlMs))
      .pexpire(key, this.ttlMs * 2)
      .exec();
  }

  follow(events: TypedEmitter<GatewayEvents>): () => void {
    const offs = [
      events.on('connection', (e) => {
        this.local.up(e.user, e.device);
        this.track(this.write(e.user, e.device));
      }),
      events.on('disconnect', (e) => {
        this.local.down(e.user, e.device);
        if (!this.local.connectedDevices(e.user).includes(e.device)) this.track(this.redis.hdel(this.key(e.user), this.field(e.device)));
      }),
    ];
    return () => offs.forEach((f) => f());
  }

  private refreshAll(): void {
    for (const [user, devices] of this.local.entries()) for (const device of devices) this.track(this.write(user, device));
  }

  async connectedDevices(user: UserId): Promise<readonly DeviceId[]> {
    const local = this.local.connectedDevices(user);
    if (local.length > 0) return local;
    const all = await this.redis.hgetall(this.key(user));
    const now = Date.now();
    const devices = new Set<DeviceId>();
    for (const [field, until] of Object.entries(all)) {
      if (Number(until) > now) devices.add(field.slice(0, field.lastIndexOf(' ')));
    }
    return [...devices];
  }

  /** True for the one node that may call the hook for `user` in this interval. */
  async claim(user: UserId, intervalMs: number): Promise<boolean> {
    if (intervalMs <= 0) return true;
    return (await this.redis.set(`${this.opts.prefix}wake:${user}`, this.node, 'PX', intervalMs, 'NX')) === 'OK';
  }

  get onlineUsers(): number {
    return this.local.onlineUsers;
  }

  /** Remove this node's entries and disconnect. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await Promise.allSettled([...this.pending]);
    // One HDEL per user rather than one MULTI: in a Redis Cluster the users' keys live on different shards.
    const drops = [...this.local.entries()].map(([user, devices]) => this.redis.hdel(this.key(user), ...[...devices].map((d) => this.field(d))));
    await Promise.allSettled(drops);
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
