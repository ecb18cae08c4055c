/**
 * The Redis pub/sub bus: wakes the node that holds a recipient's connection.
 *
 * One channel per user, `<prefix>u:<user>`. A node is subscribed to a user's channel
 * while at least one local handler wants that user, and unsubscribes when the last one
 * leaves. Subscriptions live on one connection (Redis puts it in subscriber mode, see
 * SubscriberLink in ./redis-link.ts for its state machine); publishes go on a second one.
 *
 * Health is `publisher ready && subscriber ready and resubscribed`. While unhealthy,
 * wake-ups can be missed; the gateway's sessions then read the store at a bounded
 * interval, so delivery slows but nothing is lost (the store is the source of truth).
 * Publishes that fail while the publisher is down are counted and swallowed, and the
 * newest seq per user is kept (bounded) and published again once the link is back.
 *
 * Ephemeral messages (never stored) ride the same channels; PUBLISH says how many nodes
 * received one, and each answers on the publisher's reply channel `<prefix>n:<nodeId>`
 * with how many of its devices took it (./reach-replies.ts).
 *
 * Redis errors never escape as unhandled 'error' events or rejected promises: they are
 * logged (rate-limited to state changes) and reflected in `healthy()` and `stats()`.
 * The Redis Cluster variant (sharded pub/sub) is ./redis-cluster.ts; what both share is
 * ./redis-bus-base.ts (the Bus side) and ./redis-link.ts (connections).
 */
import { Redis } from 'ioredis';
import { awaitBusStart, RedisBusBase } from './redis-bus-base.js';
import { forceReconnect, linkOptions, quitOrDisconnect, SubscriberLink, type BusLogger, type Interest } from './redis-link.js';
import { parseRedisBusOptions, redactUrl, type ParsedRedisBusOptions, type RedisBusOptionsInput } from './redis-options.js';

export type { BusLogger } from './redis-link.js';
export { redactUrl } from './redis-options.js';

export interface RedisBusStats {
  published: number;
  /** Publishes that failed (Redis down or timed out); the store still has the message. */
  publishFailures: number;
  /** Wake-ups kept while the publisher was down and published again after it came back. */
  republished: number;
  /** Deferred wake-ups dropped because more than maxDeferredUsers users were waiting. */
  deferredDropped: number;
  received: number;
  /** Payloads on our channels that did not parse as a wake-up. */
  malformed: number;
  /** Times every channel was subscribed again after a reconnect. */
  resubscribes: number;
  /** Channels this node wants subscribed now. */
  channels: number;
  healthy: boolean;
}

export class RedisBus extends RedisBusBase {
  readonly kind = 'redis';
  private readonly opts: ParsedRedisBusOptions;
  private readonly pub: Redis;
  private readonly link: SubscriberLink;
  private readonly forcing = new Set<Redis>();
  private pubUp = false;
  private pingTimer: NodeJS.Timeout | undefined;

  constructor(options: string | (RedisBusOptionsInput & { logger?: BusLogger })) {
    const { logger, ...rest } = typeof options === 'string' ? { url: options } : options;
    const opts = parseRedisBusOptions(rest);
    super(opts, logger, 'redis bus');
    this.opts = opts;
    const common = linkOptions(this.opts);
    this.pub = new Redis(this.opts.connectionUrl, { ...common, connectionName: 'pobox-bus-pub' });
    this.pub.on('error', (err: unknown) => this.errors.note('publisher', err));
    this.pub.on('ready', () => {
      this.errors.recovered('publisher');
      this.pubUp = true;
      this.updateHealth();
      this.flushDeferred();
    });
    this.pub.on('close', () => {
      this.pubUp = false;
      this.updateHealth();
    });
    this.link = new SubscriberLink(
      this.opts.connectionUrl,
      { ...common, connectionName: 'pobox-bus-sub' },
      {
        sharded: false,
        role: 'subscriber',
        errors: this.errors,
        onMessage: (channel, payload) => this.dispatch(channel, payload),
        onChange: () => this.updateHealth(),
        isClosed: () => this.closed,
      },
    );
    if (this.opts.pingIntervalMs > 0) {
      this.pingTimer = setInterval(() => this.pingBoth(), this.opts.pingIntervalMs);
      this.pingTimer.unref();
    }
    // Connect only now that every listener is attached (lazyConnect), so no early
    // error can go unhandled. Failures here are reported through 'error' and health.
    this.pub.connect().catch(() => undefined);
    this.link.connect();
  }

  healthy(): boolean {
    return !this.closed && this.pubUp && this.link.isUp();
  }

  stats(): RedisBusStats {
    return {
      ...this.counters,
      deferredDropped: this.deferred.dropped,
      resubscribes: this.link.resubscribes,
      channels: this.interests.size,
      healthy: this.healthy(),
    };
  }

  async close(): Promise<void> {
    if (!this.closeShared()) return;
    if (this.pingTimer) clearInterval(this.pingTimer);
    await Promise.allSettled([quitOrDisconnect(this.pub), this.link.close()]);
  }

  // ---- internals -------------------------------------------------------------------

  protected publisherReady(): boolean {
    return this.pub.status === 'ready';
  }

  protected send(channel: string, payload: string): Promise<number> {
    return this.pub.publish(channel, payload);
  }

  protected newInterest(_channel: string, user: string): Interest {
    return { user, handlers: new Set() };
  }

  protected want(channel: string, _it: Interest, wanted: boolean): Promise<void> {
    return this.link.want(channel, wanted);
  }

  /**
   * Subscribe this node's reply channel when it first publishes an ephemeral message (nodes
   * that never do keep one channel per user); the link keeps it across reconnects.
   */
  protected async ensureReplyChannel(): Promise<boolean> {
    const channel = this.replyChannel(this.nodeId);
    if (!this.link.isConfirmed(channel)) await this.link.want(channel, true);
    return this.link.isConfirmed(channel);
  }

  private updateHealth(): void {
    this.health.set(this.healthy());
  }

  /** A socket can stay open with nobody answering; an unanswered ping forces a reconnect. */
  private pingBoth(): void {
    this.link.ping();
    if (this.pub.status !== 'ready') return;
    this.pub.ping().catch((err: unknown) => {
      if (this.closed || this.pub.status !== 'ready') return;
      this.errors.note('publisher', err);
      forceReconnect(this.pub, this.forcing, () => {
        this.pubUp = false;
        this.updateHealth();
      });
    });
  }
}

/**
 * Create a Redis bus and wait for it to connect. Unless `startDisconnected` is set, an
 * unreachable Redis fails start-up with UNAVAILABLE (a wrong URL should not silently
 * leave a cluster polling); once started, outages are tolerated.
 */
export async function openRedisBus(options: RedisBusOptionsInput & { logger?: BusLogger }): Promise<RedisBus> {
  const bus = new RedisBus(options);
  const { connectTimeoutMs, startDisconnected } = parseRedisBusOptions(stripLogger(options));
  return awaitBusStart(bus, { what: 'redis bus', couldNot: 'could not connect to', url: redactUrl(options.url), connectTimeoutMs, startDisconnected, logger: options.logger });
}

/**
 * The bus for a `--bus` URL such as `redis://127.0.0.1:6379/0?prefix=myapp:` (what
 * src/bus/open.ts calls). Connected, or UNAVAILABLE if Redis cannot be reached.
 */
export function createRedisBus(url: string, extra: Omit<RedisBusOptionsInput, 'url'> & { logger?: BusLogger } = {}): Promise<RedisBus> {
  return openRedisBus({ ...extra, url });
}

function stripLogger(options: RedisBusOptionsInput & { logger?: BusLogger }): RedisBusOptionsInput {
  const { logger: _logger, ...rest } = options;
  return rest;
}
