/**
 * The Redis Cluster bus: sharded pub/sub (SSUBSCRIBE / SPUBLISH, Redis 7), so a
 * wake-up travels only to the shard that owns the user's channel instead of being
 * broadcast over the whole cluster as classic PUBLISH is.
 *
 * Channels are `<prefix>u:<user>`, hashed to slots like keys (no hash tag, so users
 * spread over every shard). Two kinds of connection:
 *
 * - publishing goes through ioredis's `Cluster`, which routes SPUBLISH to the owner of
 *   the channel's slot, follows MOVED, and re-reads the slot map every
 *   `slotsRefreshIntervalMs` (so a failover or resharding is followed);
 * - subscriptions live on one SubscriberLink per master (./redis-link.ts, the same
 *   per-channel state machine as the single-server bus, in sharded mode). After every
 *   slot-map refresh each wanted channel is moved to the link of its slot's master:
 *   unsubscribed from the old one, subscribed on the new one.
 *
 * ioredis's own `shardedSubscribers` mode is not used: it resubscribes after a topology
 * change without telling anyone whether that worked, and the bus must know when every
 * channel is confirmed again before it reports healthy and sessions stop polling.
 *
 * Health is: the cluster client ready, every slot has a master, and every master's
 * link up with all its channels confirmed. A master killed makes its link drop, so the
 * bus reports unhealthy and sessions poll the store; once the master is back (restarted,
 * or replaced by a promoted replica that the next slot refresh finds), its channels are
 * subscribed again and the bus reports healthy. Wake-ups whose publish failed meanwhile
 * are kept (newest seq per user) and published again when the bus is healthy.
 *
 * Ephemeral messages work as on one Redis (./redis.ts): SPUBLISH says how many nodes
 * received one, and each answers with its reach on the publisher's reply channel
 * `<prefix>n:<nodeId>`, itself a sharded channel on whichever master owns its slot.
 */
import calculateSlot from 'cluster-key-slot';
import { Cluster, type RedisOptions } from 'ioredis';
import { awaitBusStart, RedisBusBase } from './redis-bus-base.js';
import { reconnectDelay, linkOptions, SubscriberLink, type BusLogger, type Interest } from './redis-link.js';
import { parseRedisClusterBusOptions, redactUrl, type ParsedRedisClusterBusOptions, type RedisClusterBusOptionsInput } from './redis-options.js';
import type { RedisBusStats } from './redis.js';

export interface RedisClusterBusStats extends RedisBusStats {
  /** Masters (shards) this node has a subscriber link to. */
  shards: number;
  /** Channels moved to another master after a slot-map change. */
  moved: number;
}

const SLOTS = 16384;

interface ClusterInterest extends Interest {
  /** The master whose link the channel is wanted on ("host:port"), once the slot map is known. */
  owner: string | undefined;
}

export class RedisClusterBus extends RedisBusBase<ClusterInterest> {
  readonly kind = 'redis-cluster';
  private readonly opts: ParsedRedisClusterBusOptions;
  private readonly cluster: Cluster;
  private readonly linkOpts: RedisOptions;
  /** One subscriber link per master, by "host:port". */
  private readonly links = new Map<string, SubscriberLink>();
  /** Master of each slot, as of the last refresh. */
  private owners: Array<string | undefined> = [];
  private complete = false;
  private pingTimer: NodeJS.Timeout | undefined;
  private resubscribesOfClosedLinks = 0;
  /** Channels moved to another master after a slot-map change. */
  private moved = 0;
  /** The reply channel, once this node first published an ephemeral message. */
  private replyInterest: ClusterInterest | undefined;

  constructor(options: string | (RedisClusterBusOptionsInput & { logger?: BusLogger })) {
    const { logger, ...rest } = typeof options === 'string' ? { url: options } : options;
    const opts = parseRedisClusterBusOptions(rest);
    super(opts, logger, 'redis cluster bus');
    this.opts = opts;
    const auth: RedisOptions = {
      ...(this.opts.username !== undefined ? { username: this.opts.username } : {}),
      ...(this.opts.password !== undefined ? { password: this.opts.password } : {}),
      ...(this.opts.tls ? { tls: {} } : {}),
    };
    this.linkOpts = { ...linkOptions(this.opts), ...auth, connectionName: 'pobox-bus-sub' };
    const { retryStrategy: _own, lazyConnect: _lazy, ...nodeOpts } = linkOptions(this.opts);
    this.cluster = new Cluster(this.opts.seeds, {
      lazyConnect: true,
      enableOfflineQueue: false,
      slotsRefreshInterval: this.opts.slotsRefreshIntervalMs,
      slotsRefreshTimeout: this.opts.commandTimeoutMs,
      clusterRetryStrategy: (attempt) => reconnectDelay(attempt, this.opts.reconnectMaxDelayMs),
      // A master restarted without a slot change is reconnected to, with the same backoff.
      clusterNodeRetryStrategy: (attempt) => reconnectDelay(attempt, this.opts.reconnectMaxDelayMs),
      redisOptions: { ...nodeOpts, ...auth, connectionName: 'pobox-bus-pub' },
    });
    this.cluster.on('error', (err: unknown) => this.errors.note('cluster', err));
    this.cluster.on('node error', (err: unknown, key: string) => this.errors.note(`cluster node ${key}`, err));
    this.cluster.on('ready', () => {
      this.errors.recovered('cluster');
      this.followSlots();
    });
    this.cluster.on('refresh', () => this.followSlots());
    for (const ev of ['close', 'end', 'reconnecting']) this.cluster.on(ev, () => this.updateHealth());
    if (this.opts.pingIntervalMs > 0) {
      this.pingTimer = setInterval(() => this.tick(), this.opts.pingIntervalMs);
      this.pingTimer.unref();
    }
    this.cluster.connect().catch(() => undefined);
  }

  /** The master ("host:port") that owns a user's channel, as this node last saw the slot map. */
  shardOf(user: string): string | undefined {
    return this.owners[calculateSlot(this.channelFor(user))];
  }

  healthy(): boolean {
    if (this.closed || this.cluster.status !== 'ready' || !this.complete || this.links.size === 0) return false;
    for (const link of this.links.values()) if (!link.isUp()) return false;
    return true;
  }

  stats(): RedisClusterBusStats {
    let resubscribes = this.resubscribesOfClosedLinks;
    for (const link of this.links.values()) resubscribes += link.resubscribes;
    return {
      ...this.counters,
      moved: this.moved,
      deferredDropped: this.deferred.dropped,
      resubscribes,
      channels: this.interests.size,
      shards: this.links.size,
      healthy: this.healthy(),
    };
  }

  async close(): Promise<void> {
    if (!this.closeShared()) return;
    if (this.pingTimer) clearInterval(this.pingTimer);
    const links = [...this.links.values()];
    this.links.clear();
    await Promise.allSettled([...links.map((l) => l.close()), this.quitCluster()]);
  }

  // ---- internals -------------------------------------------------------------------

  /**
   * QUIT every node, but not for longer than a command timeout: ioredis queues the QUIT of
   * a node it is still reconnecting to, and that node may never come back.
   */
  private async quitCluster(): Promise<void> {
    // A closed bus refreshes no slots. ioredis's refresh interval re-arms its timer when a
    // refresh ends, and one that is in flight at quit re-arms it after the quit cleared it:
    // from then on the timer refreshes a cluster with no nodes and re-arms itself forever,
    // and the process never exits (test: redis-cluster.test.ts, cluster-close-child.ts).
    this.cluster.refreshSlotsCache = (): void => undefined;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.opts.commandTimeoutMs)));
    await Promise.race([this.cluster.quit().catch(() => undefined), late]);
    clearTimeout(timer);
    this.cluster.disconnect();
  }

  protected publisherReady(): boolean {
    return this.cluster.status === 'ready';
  }

  /** SPUBLISH (receivers on the shard), bounded by the command timeout even if ioredis keeps retrying a redirect. */
  protected async send(channel: string, payload: string): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`SPUBLISH unanswered for ${this.opts.commandTimeoutMs} ms`)), this.opts.commandTimeoutMs);
    });
    try {
      return Number(await Promise.race([this.cluster.spublish(channel, payload), timeout]));
    } finally {
      clearTimeout(timer);
    }
  }

  protected newInterest(channel: string, user: string): ClusterInterest {
    const it: ClusterInterest = { user, handlers: new Set(), owner: undefined };
    this.place(channel, it);
    return it;
  }

  /** On the link of the channel's master; without a slot map yet, or with the owner down, nothing (the channel is subscribed once it can be). */
  protected async want(channel: string, it: ClusterInterest, wanted: boolean): Promise<void> {
    if (it.owner) await this.links.get(it.owner)?.want(channel, wanted);
  }

  /** Subscribe this node's reply channel (on its slot's master) when it first publishes an ephemeral message. */
  protected async ensureReplyChannel(): Promise<boolean> {
    const channel = this.replyChannel(this.nodeId);
    if (!this.replyInterest) {
      this.replyInterest = { user: '', handlers: new Set([{ fn: () => undefined }]), owner: undefined };
      this.place(channel, this.replyInterest);
    }
    const link = this.replyInterest.owner ? this.links.get(this.replyInterest.owner) : undefined;
    if (!link) return false;
    if (!link.isConfirmed(channel)) await link.want(channel, true);
    return link.isConfirmed(channel);
  }

  /** Adopt the slot map ioredis just read: a link per master, every channel on its owner's link. */
  private followSlots(): void {
    if (this.closed) return;
    const owners: Array<string | undefined> = new Array(SLOTS);
    let complete = true;
    const masters = new Set<string>();
    for (let slot = 0; slot < SLOTS; slot++) {
      const owner = this.cluster.slots[slot]?.[0];
      owners[slot] = owner;
      if (owner === undefined) complete = false;
      else masters.add(owner);
    }
    this.owners = owners;
    this.complete = complete;
    for (const key of masters) if (!this.links.has(key)) this.openLink(key);
    for (const [channel, it] of this.interests) this.place(channel, it);
    if (this.replyInterest) this.place(this.replyChannel(this.nodeId), this.replyInterest);
    for (const [key, link] of this.links) {
      if (masters.has(key)) continue;
      this.links.delete(key);
      this.resubscribesOfClosedLinks += link.resubscribes;
      link.close().catch((err: unknown) => this.errors.note(`subscriber ${key}`, err));
    }
    this.updateHealth();
  }

  /** Want the channel on the link of its slot's current master (and no longer on the old one). */
  private place(channel: string, it: ClusterInterest): void {
    const owner = this.owners[calculateSlot(channel)];
    if (owner === it.owner) return;
    const previous = it.owner;
    it.owner = owner;
    if (previous !== undefined) {
      this.moved++;
      // want() reports its own failures (and reconnects); nothing is left to handle here.
      this.links
        .get(previous)
        ?.want(channel, false)
        .catch((err: unknown) => this.errors.note(`subscriber ${previous}`, err));
    }
    if (owner !== undefined && it.handlers.size > 0)
      this.links
        .get(owner)
        ?.want(channel, true)
        .catch((err: unknown) => this.errors.note(`subscriber ${owner}`, err));
  }

  private openLink(key: string): void {
    const colon = key.lastIndexOf(':');
    const host = key.slice(0, colon);
    const port = Number(key.slice(colon + 1));
    const role = `subscriber ${key}`;
    const link: SubscriberLink = new SubscriberLink({ host, port }, this.linkOpts, {
      sharded: true,
      role,
      errors: this.errors,
      onMessage: (channel, payload) => this.dispatch(channel, payload),
      onChange: () => this.updateHealth(),
      isClosed: (): boolean => this.closed || this.links.get(key) !== link,
    });
    this.links.set(key, link);
    link.connect();
  }

  private updateHealth(): void {
    const healthy = this.healthy();
    if (this.health.set(healthy) && healthy) this.flushDeferred();
  }

  /** Ping every link (a silently dead master is noticed) and retry kept wake-ups while healthy. */
  private tick(): void {
    for (const link of this.links.values()) link.ping();
    if (this.deferred.size > 0 && this.healthy()) this.flushDeferred();
  }
}

/**
 * Create a Redis Cluster bus and wait until it is healthy. Unless `startDisconnected` is
 * set, a cluster that cannot be reached fails start-up with UNAVAILABLE.
 */
export async function openRedisClusterBus(options: RedisClusterBusOptionsInput & { logger?: BusLogger }): Promise<RedisClusterBus> {
  const bus = new RedisClusterBus(options);
  const { logger, ...rest } = options;
  const { connectTimeoutMs, startDisconnected } = parseRedisClusterBusOptions(rest);
  return awaitBusStart(bus, { what: 'redis cluster bus', couldNot: 'could not reach every master of', url: redactUrl(options.url), connectTimeoutMs, startDisconnected, logger });
}
