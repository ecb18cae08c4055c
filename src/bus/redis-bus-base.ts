/**
 * The Bus side both Redis buses share (one server: ./redis.ts; Redis Cluster:
 * ./redis-cluster.ts): a user's channel and its local handlers, publishing a wake-up (and
 * collecting an ephemeral's reach on this node's reply channel, ./reach-replies.ts),
 * keeping the wake-ups that could not be published, handing a received wake-up to its
 * handlers and answering its reach, health listeners and the counters. A subclass says
 * how its connections publish and subscribe: PUBLISH and one subscriber link, or SPUBLISH
 * and a link per master (./redis-link.ts).
 */
import { randomUUID } from 'node:crypto';
import { closedError, PoboxError } from '../core/errors.js';
import { isValidId } from '../core/ids.js';
import type { Bus, Wake, WakeHandler } from './contract.js';
import { DeferredWakes, deliverWake, ErrorNotes, HealthSignal, replyOf, waitHealthy, type BusLogger, type Interest } from './redis-link.js';
import { ReachReplies } from './reach-replies.js';
import { decodeWake, encodeWake } from './wake-codec.js';

/** The options both buses take that this part uses (see ./redis-options.ts). */
export interface SharedBusOptions {
  prefix: string;
  maxInlineBytes: number;
  maxDeferredUsers: number;
  reachTimeoutMs: number;
}

export abstract class RedisBusBase<I extends Interest = Interest> implements Bus {
  abstract readonly kind: string;
  readonly prefix: string;
  /** This bus's id: other nodes answer ephemeral reach counts on `<prefix>n:<nodeId>`. */
  readonly nodeId = randomUUID();
  protected readonly logger: BusLogger | undefined;
  protected readonly interests = new Map<string, I>();
  protected readonly health: HealthSignal;
  protected readonly errors: ErrorNotes;
  protected readonly deferred: DeferredWakes;
  protected readonly replies: ReachReplies;
  protected readonly counters = { published: 0, publishFailures: 0, republished: 0, received: 0, malformed: 0 };
  protected closed = false;
  private readonly maxInlineBytes: number;

  constructor(
    opts: SharedBusOptions,
    logger: BusLogger | undefined,
    /** Names the bus in errors: `redis bus`, `redis cluster bus`. */
    private readonly what: string,
  ) {
    this.prefix = opts.prefix;
    this.logger = logger;
    this.maxInlineBytes = opts.maxInlineBytes;
    this.health = new HealthSignal(logger);
    this.errors = new ErrorNotes(logger, () => this.closed);
    this.deferred = new DeferredWakes(opts.maxDeferredUsers);
    this.replies = new ReachReplies(opts.reachTimeoutMs);
  }

  // ---- what a subclass provides ------------------------------------------------------------

  abstract healthy(): boolean;
  abstract close(): Promise<void>;
  /** The publishing connection is ready now (publishes fail at once while it is not). */
  protected abstract publisherReady(): boolean;
  /** PUBLISH or SPUBLISH; resolves with how many nodes received it. */
  protected abstract send(channel: string, payload: string): Promise<number>;
  /** A new interest in `channel`, not yet wanted anywhere. */
  protected abstract newInterest(channel: string, user: string): I;
  /** Want the channel subscribed (or not) on the connection that carries it; resolves without a subscription while that is down. */
  protected abstract want(channel: string, it: I, wanted: boolean): Promise<void>;
  /** Subscribe this node's reply channel, once it first publishes an ephemeral; true once Redis confirmed it. */
  protected abstract ensureReplyChannel(): Promise<boolean>;

  // ---- the Bus -----------------------------------------------------------------------------

  /** Resolves true once the bus is healthy, or false after `timeoutMs`. */
  waitHealthy(timeoutMs: number): Promise<boolean> {
    return waitHealthy(this, timeoutMs);
  }

  channelFor(user: string): string {
    return `${this.prefix}u:${user}`;
  }

  async subscribe(user: string, handler: WakeHandler): Promise<() => Promise<void>> {
    if (this.closed) throw closedError(this.what);
    if (!isValidId(user)) throw new PoboxError('BAD_REQUEST', 'bus subscribe: invalid user id', { field: 'user' });
    const channel = this.channelFor(user);
    let it = this.interests.get(channel);
    if (!it) {
      it = this.newInterest(channel, user);
      this.interests.set(channel, it);
    }
    const ref = { fn: handler };
    it.handlers.add(ref);
    const interest = it;
    // While Redis (or the channel's master) is down this resolves without a subscription:
    // the bus reports unhealthy (so the session polls) and the channel is subscribed once it can be.
    await this.want(channel, interest, true);
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      interest.handlers.delete(ref);
      if (interest.handlers.size > 0) return;
      // A later subscribe makes a new interest; its want(true) queues after this want(false).
      this.interests.delete(channel);
      await this.want(channel, interest, false);
    };
  }

  async publish(wake: Wake): Promise<number | void> {
    if (this.closed) {
      this.counters.publishFailures++;
      return;
    }
    if (!this.publisherReady()) {
      this.counters.publishFailures++;
      // An ephemeral message is worth nothing later: it is dropped, not deferred.
      if (wake.ephemeral === undefined) this.deferred.add(wake);
      return;
    }
    try {
      const channel = this.channelFor(wake.user);
      if (wake.ephemeral === undefined || !(await this.ensureReplyChannel())) {
        await this.send(channel, encodeWake(wake, this.maxInlineBytes));
        this.counters.published++;
        return; // an ephemeral's reach is unknown beyond this node without the reply channel
      }
      // Every receiving node answers with the devices that took it (reach-replies.ts);
      // (S)PUBLISH says how many nodes received it, so we know how many answers to wait for.
      const ref = this.replies.newRef();
      const receivers = await this.send(channel, encodeWake({ ...wake, reply: { to: this.nodeId, ref } }, this.maxInlineBytes));
      this.counters.published++;
      return await this.replies.collect(ref, receivers);
    } catch (err) {
      this.counters.publishFailures++;
      if (wake.ephemeral === undefined) this.deferred.add(wake);
      this.errors.note('publisher', err);
    }
  }

  onHealth(fn: (healthy: boolean) => void): () => void {
    return this.health.on(fn);
  }

  // ---- for the subclasses ------------------------------------------------------------------

  /** What close() does before closing the connections. Returns false when already closed. */
  protected closeShared(): boolean {
    if (this.closed) return false;
    this.closed = true;
    this.health.clear();
    this.deferred.clear();
    this.replies.close();
    this.interests.clear();
    return true;
  }

  protected replyChannel(nodeId: string): string {
    return `${this.prefix}n:${nodeId}`;
  }

  /** A payload on one of our channels: a reach answer, or a wake-up for the local handlers (and its reach answered). */
  protected dispatch(channel: string, payload: string): void {
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
    // the publisher waits for as many answers as (S)PUBLISH counted.
    const reply = wake?.reply ?? (it ? undefined : replyOf(payload));
    if (reply && this.publisherReady()) {
      this.send(this.replyChannel(reply.to), ReachReplies.encode(reply.ref, took)).catch((err: unknown) => this.errors.note('publisher', err));
    }
  }

  /** Publish the kept wake-ups again; any that fail are kept again. */
  protected flushDeferred(): void {
    for (const wake of this.deferred.take()) {
      this.send(this.channelFor(wake.user), encodeWake(wake, 0)).then(
        () => {
          this.counters.republished++;
        },
        () => {
          this.deferred.add(wake);
        },
      );
    }
  }
}

/**
 * Wait for a new bus to be healthy. Unless `startDisconnected` is set, one that cannot be
 * reached fails start-up with UNAVAILABLE (a wrong URL should not silently leave a cluster
 * polling); once started, outages are tolerated.
 */
export async function awaitBusStart<B extends Bus & { waitHealthy(timeoutMs: number): Promise<boolean> }>(
  bus: B,
  o: { what: string; couldNot: string; url: string; connectTimeoutMs: number; startDisconnected: boolean; logger: BusLogger | undefined },
): Promise<B> {
  const ok = await bus.waitHealthy(o.connectTimeoutMs);
  if (!ok && !o.startDisconnected) {
    await bus.close();
    throw new PoboxError('UNAVAILABLE', `${o.what}: ${o.couldNot} ${o.url} within ${o.connectTimeoutMs} ms`);
  }
  if (!ok) o.logger?.warn({ url: o.url }, `${o.what} not reachable yet; sessions poll the store until it is`);
  return bus;
}
