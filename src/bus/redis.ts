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
 * The Redis Cluster variant (sharded pub/sub) is ./redis-cluster.ts.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { closedError, PoboxError } from '../core/errors.js';
import { isValidId } from '../core/ids.js';
import type { Bus, Wake, WakeHandler } from './contract.js';
import {
  DeferredWakes,
  deliverWake,
  ErrorNotes,
  forceReconnect,
  HealthSignal,
  linkOptions,
  quitOrDisconnect,
  replyOf,
  SubscriberLink,
  waitHealthy,
  type BusLogger,
  type Interest,
} from './redis-link.js';
import { parseRedisBusOptions, redactUrl, type ParsedRedisBusOptions, type RedisBusOptionsInput } from './redis-options.js';
import { ReachReplies } from './reach-replies.js';
import { decodeWake, encodeWake } from './wake-codec.js';

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

export class RedisBus implements Bus {
  readonly kind = 'redis';
  readonly prefix: string;
  private readonly opts: ParsedRedisBusOptions;
  private readonly logger: BusLogger | undefined;
  private readonly pub: Redis;
  private readonly link: SubscriberLink;
  private readonly interests = new Map<string, Interest>();
  private readonly health: HealthSignal;
  private readonly errors: ErrorNotes;
  private readonly deferred: DeferredWakes;
  private readonly forcing = new Set<Redis>();
  private pubUp = false;
  private closed = false;
  private pingTimer: NodeJS.Timeout | undefined;
  /** This bus's id: other nodes answer ephemeral reach counts on `<prefix>n:<nodeId>`. */
  readonly nodeId = randomUUID();
  private readonly replies: ReachReplies;
  private readonly counters = { published: 0, publishFailures: 0, republished: 0, received: 0, malformed: 0 };

  constructor(options: string | (RedisBusOptionsInput & { logger?: BusLogger })) {
    const { logger, ...rest } = typeof options === 'string' ? { url: options } : options;
    this.opts = parseRedisBusOptions(rest);
    this.logger = logger;
    this.prefix = this.opts.prefix;
    this.health = new HealthSignal(logger);
    this.errors = new ErrorNotes(logger, () => this.closed);
    this.deferred = new DeferredWakes(this.opts.maxDeferredUsers);
    this.replies = new ReachReplies(this.opts.reachTimeoutMs);
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

  /** Resolves once both connections are up and resubscribed, or false after `timeoutMs`. */
  waitHealthy(timeoutMs: number): Promise<boolean> {
    return waitHealthy(this, timeoutMs);
  }

  channelFor(user: string): string {
    return `${this.prefix}u:${user}`;
  }

  async subscribe(user: string, handler: WakeHandler): Promise<() => Promise<void>> {
    if (this.closed) throw closedError('redis bus');
    if (!isValidId(user)) throw new PoboxError('BAD_REQUEST', 'bus subscribe: invalid user id', { field: 'user' });
    const channel = this.channelFor(user);
    let it = this.interests.get(channel);
    if (!it) {
      it = { user, handlers: new Set() };
      this.interests.set(channel, it);
    }
    const ref = { fn: handler };
    it.handlers.add(ref);
    const interest = it;
    // While Redis is down this resolves without a subscription: the bus reports unhealthy
    // (so the session polls) and the channel is subscribed on reconnect.
    await this.link.want(channel, true);
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      interest.handlers.delete(ref);
      if (interest.handlers.size > 0) return;
      // A later subscribe makes a new interest; its want(true) queues after this want(false).
      this.interests.delete(channel);
      await this.link.want(channel, false);
    };
  }

  async publish(wake: Wake): Promise<number | void> {
    if (this.closed) {
      this.counters.publishFailures++;
      return;
    }
    if (this.pub.status !== 'ready') {
      this.counters.publishFailures++;
      // An ephemeral message is worth nothing later: it is dropped, not deferred.
      if (wake.ephemeral === undefined) this.deferred.add(wake);
      return;
    }
    try {
      const channel = this.channelFor(wake.user);
      if (wake.ephemeral === undefined || !(await this.ensureReplyChannel())) {
        await this.pub.publish(channel, encodeWake(wake, this.opts.maxInlineBytes));
        this.counters.published++;
        return; // an ephemeral's reach is unknown beyond this node without the reply channel
      }
      // Every receiving node answers with the devices that took it (reach-replies.ts);
      // PUBLISH says how many nodes received it, so we know how many answers to wait for.
      const ref = this.replies.newRef();
      const receivers = await this.pub.publish(channel, encodeWake({ ...wake, reply: { to: this.nodeId, ref } }, this.opts.maxInlineBytes));
      this.counters.published++;
      return await this.replies.collect(ref, receivers);
    } catch (err) {
      this.counters.publishFailures++;
      if (wake.ephemeral === undefined) this.deferred.add(wake);
      this.errors.note('publisher', err);
    }
  }

  healthy(): boolean {
    return !this.closed && this.pubUp && this.link.isUp();
  }

  onHealth(fn: (healthy: boolean) => void): () => void {
    return this.health.on(fn);
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
    if (this.closed) return;
    this.closed = true;
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.health.clear();
    this.deferred.clear();
    this.replies.close();
    this.interests.clear();
    await Promise.allSettled([quitOrDisconnect(this.pub), this.link.close()]);
  }

  // ---- internals -------------------------------------------------------------------

  private updateHealth(): void {
    this.health.set(this.healthy());
  }

  private replyChannel(nodeId: string): string {
    return `${this.prefix}n:${nodeId}`;
  }

  /**
   * Subscribe this node's reply channel when it first publishes an ephemeral message (nodes
   * that never do keep one channel per user); the link keeps it across reconnects.
   */
  private async ensureReplyChannel(): Promise<boolean> {
    const channel = this.replyChannel(this.nodeId);
    if (!this.link.isConfirmed(channel)) await this.link.want(channel, true);
    return this.link.isConfirmed(channel);
  }

  private dispatch(channel: string, payload: string): void {
    if (channel === this.replyChannel(this.nodeId)) {
      this.replies.onReply(payload);
      return;
    }
    const it = this.interests.get(channel);
    const wake = it ? decodeWake(payload) : undefined;
    if (it && (!wake || wake.user !== it.user)) {
      this.counters.malformed++;
      return;
    }
    let took = 0;
    if (it && wake) {
      this.counters.received++;
      took = deliverWake(it, wake, this.logger);
    }
    // Answer every ephemeral that reached this node, even with 0 (a channel we just left):
    // the publisher waits for as many answers as PUBLISH counted.
    const reply = wake?.reply ?? (it ? undefined : replyOf(payload));
    if (reply && this.pub.status === 'ready') {
      this.pub.publish(this.replyChannel(reply.to), ReachReplies.encode(reply.ref, took)).catch((err: unknown) => this.errors.note('publisher', err));
    }
  }

  private flushDeferred(): void {
    for (const wake of this.deferred.take()) {
      this.pub.publish(this.channelFor(wake.user), encodeWake(wake, 0)).then(
        () => {
          this.counters.republished++;
        },
        () => {
          this.deferred.add(wake);
        },
      );
    }
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
  const ok = await bus.waitHealthy(connectTimeoutMs);
  if (!ok && !startDisconnected) {
    await bus.close();
    throw new PoboxError('UNAVAILABLE', `redis bus: could not connect to ${redactUrl(options.url)} within ${connectTimeoutMs} ms`);
  }
  if (!ok) options.logger?.warn({ url: redactUrl(options.url) }, 'redis bus not reachable yet; sessions poll the store until it is');
  return bus;
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
