/**
 * The Redis pub/sub bus: wakes the node that holds a recipient's connection.
 *
 * One channel per user, `<prefix>u:<user>`. A node is subscribed to a user's channel
 * while at least one local handler wants that user, and unsubscribes when the last one
 * leaves. Subscriptions live on one connection (Redis puts it in subscriber mode);
 * publishes go on a second one.
 *
 * Subscription state machine, per user channel ("interest"):
 *
 *   handlers  the local subscribers (each subscribe() call is its own reference)
 *   confirmed true once Redis acknowledged SUBSCRIBE on the current connection
 *
 *   Every change of `handlers` enqueues a sync on the interest's own promise chain. A
 *   sync compares what is wanted (handlers non-empty) with what is confirmed and sends
 *   SUBSCRIBE or UNSUBSCRIBE. Because syncs of one channel run one after another and
 *   each decides from the state at the moment it runs, any interleaving of concurrent
 *   subscribe/unsubscribe calls ends with Redis matching the last wanted state. An
 *   interest is forgotten once nothing wants it, nothing is confirmed and no sync is queued.
 *
 * Connection state machine (both connections, managed by ioredis with our options):
 *
 *   ready -> (socket closes) -> reconnecting -> ready -> ...
 *
 *   On close every interest becomes unconfirmed and the connection generation moves on,
 *   so a reply from an older connection can never mark a channel confirmed. ioredis's own
 *   resubscribe and command replay are off: on ready the bus resubscribes every wanted
 *   channel itself and reports healthy only after Redis confirmed them all. Commands are
 *   never queued while down (they fail at once), so nothing stale is sent after a reconnect.
 *
 * Health is `publisher ready && subscriber ready and resubscribed`. While unhealthy,
 * wake-ups can be missed; the gateway's sessions then read the store at a bounded
 * interval, so delivery slows but nothing is lost (the store is the source of truth).
 * Publishes that fail while the publisher is down are counted and swallowed, and the
 * newest seq per user is kept (bounded) and published again once the link is back.
 *
 * Redis errors never escape as unhandled 'error' events or rejected promises: they are
 * logged (rate-limited to state changes) and reflected in `healthy()` and `stats()`.
 */
import { randomUUID } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { backoffDelay } from '../core/backoff.js';
import { PoboxError, closedError } from '../core/errors.js';
import { isValidId } from '../core/ids.js';
import type { Bus, Wake, WakeHandler } from './contract.js';
import { parseRedisBusOptions, type ParsedRedisBusOptions, type RedisBusOptionsInput } from './redis-options.js';
import { ReachReplies } from './reach-replies.js';
import { decodeWake, encodeWake } from './wake-codec.js';

/** The subset of a pino logger the bus uses. */
export interface BusLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

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

interface HandlerRef {
  fn: WakeHandler;
}

interface Interest {
  channel: string;
  user: string;
  handlers: Set<HandlerRef>;
  confirmed: boolean;
  chain: Promise<void>;
  queued: number;
}

export class RedisBus implements Bus {
  readonly kind = 'redis';
  readonly prefix: string;
  private readonly opts: ParsedRedisBusOptions;
  private readonly logger: BusLogger | undefined;
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly interests = new Map<string, Interest>();
  private readonly healthListeners = new Set<(healthy: boolean) => void>();
  /** Newest wake per user that could not be published (without the message). */
  private readonly deferred = new Map<string, Wake>();
  private subGeneration = 0;
  private pubUp = false;
  private subUp = false;
  private lastHealth = false;
  private closed = false;
  private pingTimer: NodeJS.Timeout | undefined;
  private readonly lastError = new Map<Redis, string>();
  /** Connections being dropped on purpose, until their socket closes. */
  private readonly forcing = new Set<Redis>();
  /** This bus's id: other nodes answer ephemeral reach counts on `<prefix>n:<nodeId>`. */
  readonly nodeId = randomUUID();
  private readonly replies: ReachReplies;
  /** The subscriber connection generation on which the reply channel is subscribed (-1: none). */
  private replyGeneration = -1;
  private readonly counters = { published: 0, publishFailures: 0, republished: 0, deferredDropped: 0, received: 0, malformed: 0, resubscribes: 0 };

  constructor(options: string | (RedisBusOptionsInput & { logger?: BusLogger })) {
    const { logger, ...rest } = typeof options === 'string' ? { url: options } : options;
    this.opts = parseRedisBusOptions(rest);
    this.logger = logger;
    this.prefix = this.opts.prefix;
    this.replies = new ReachReplies(this.opts.reachTimeoutMs);
    const common: RedisOptions = {
      lazyConnect: true,
      // Fail commands at once while down instead of queueing them: a queued SUBSCRIBE or
      // PUBLISH replayed after a reconnect would be stale; the bus does its own recovery.
      enableOfflineQueue: false,
      // Reject in-flight commands when the socket closes (0 = flush on every close).
      maxRetriesPerRequest: 0,
      autoResubscribe: false,
      autoResendUnfulfilledCommands: false,
      connectTimeout: this.opts.commandTimeoutMs * 2,
      commandTimeout: this.opts.commandTimeoutMs,
      keepAlive: 10_000,
      // A link dropped for not answering is not waited on to close gracefully.
      disconnectTimeout: Math.min(this.opts.commandTimeoutMs, 1000),
      retryStrategy: (attempt) => backoffDelay(attempt, { baseMs: 50, maxMs: this.opts.reconnectMaxDelayMs, jitter: 'equal' }).delayMs,
    };
    this.pub = new Redis(this.opts.connectionUrl, { ...common, connectionName: 'pobox-bus-pub' });
    this.sub = new Redis(this.opts.connectionUrl, { ...common, connectionName: 'pobox-bus-sub' });
    this.wire(this.pub, 'publisher');
    this.wire(this.sub, 'subscriber');
    this.sub.on('message', (channel: string, payload: string) => this.dispatch(channel, payload));
    this.pub.on('ready', () => {
      this.pubUp = true;
      this.updateHealth();
      this.flushDeferred();
    });
    this.pub.on('close', () => {
      this.pubUp = false;
      this.updateHealth();
    });
    this.sub.on('ready', () => {
      this.resubscribeAll().catch((err: unknown) => this.logger?.warn({ err: String(err) }, 'redis bus resubscribe failed; the next reconnect tries again'));
    });
    this.sub.on('close', () => {
      this.subGeneration++;
      this.subUp = false;
      for (const it of this.interests.values()) it.confirmed = false;
      this.updateHealth();
    });
    if (this.opts.pingIntervalMs > 0) {
      this.pingTimer = setInterval(() => this.pingBoth(), this.opts.pingIntervalMs);
      this.pingTimer.unref();
    }
    // Connect only now that every listener is attached (lazyConnect above), so no early
    // error can go unhandled. Failures here are reported through 'error' and health.
    for (const conn of [this.pub, this.sub]) conn.connect().catch(() => undefined);
  }

  /** Resolves once both connections are up and resubscribed, or false after `timeoutMs`. */
  waitHealthy(timeoutMs: number): Promise<boolean> {
    if (this.healthy()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        off();
        resolve(false);
      }, timeoutMs);
      const off = this.onHealth((h) => {
        if (!h) return;
        clearTimeout(timer);
        off();
        resolve(true);
      });
    });
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
      it = { channel, user, handlers: new Set(), confirmed: false, chain: Promise.resolve(), queued: 0 };
      this.interests.set(channel, it);
    }
    const ref: HandlerRef = { fn: handler };
    it.handlers.add(ref);
    const interest = it;
    // While Redis is down this resolves without a subscription: the bus reports unhealthy
    // (so the session polls) and the channel is subscribed on reconnect.
    await this.sync(interest);
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      interest.handlers.delete(ref);
      await this.sync(interest);
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
      if (wake.ephemeral === undefined) this.defer(wake);
      return;
    }
    try {
      const channel = this.channelFor(wake.user);
      if (wake.ephemeral === undefined) {
        await this.pub.publish(channel, encodeWake(wake, this.opts.maxInlineBytes));
        this.counters.published++;
        return;
      }
      // Every receiving node answers with the devices that took it (reach-replies.ts);
      // PUBLISH says how many nodes received it, so we know how many answers to wait for.
      if (!(await this.ensureReplyChannel())) {
        await this.pub.publish(channel, encodeWake(wake, this.opts.maxInlineBytes));
        this.counters.published++;
        return; // reach unknown beyond this node
      }
      const ref = this.replies.newRef();
      const receivers = await this.pub.publish(channel, encodeWake({ ...wake, reply: { to: this.nodeId, ref } }, this.opts.maxInlineBytes));
      this.counters.published++;
      return await this.replies.collect(ref, receivers);
    } catch (err) {
      this.counters.publishFailures++;
      if (wake.ephemeral === undefined) this.defer(wake);
      this.noteError(this.pub, 'publisher', err);
    }
  }

  healthy(): boolean {
    return !this.closed && this.pubUp && this.subUp;
  }

  onHealth(fn: (healthy: boolean) => void): () => void {
    this.healthListeners.add(fn);
    return () => {
      this.healthListeners.delete(fn);
    };
  }

  stats(): RedisBusStats {
    let channels = 0;
    for (const it of this.interests.values()) if (it.handlers.size > 0) channels++;
    return { ...this.counters, channels, healthy: this.healthy() };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.healthListeners.clear();
    this.deferred.clear();
    this.replies.close();
    for (const it of this.interests.values()) it.handlers.clear();
    this.interests.clear();
    await Promise.allSettled([quitOrDisconnect(this.pub), quitOrDisconnect(this.sub)]);
  }

  // ---- internals -------------------------------------------------------------------

  private wire(conn: Redis, role: 'publisher' | 'subscriber'): void {
    // Without a listener ioredis would print every connection error; with one, an error
    // can never become an uncaught exception. Logged once per distinct message.
    conn.on('error', (err: unknown) => this.noteError(conn, role, err));
    conn.on('ready', () => {
      if (this.lastError.delete(conn)) this.logger?.info({ role }, 'redis bus connection is back');
    });
  }

  private noteError(conn: Redis, role: string, err: unknown): void {
    if (this.closed) return;
    const message = err instanceof Error ? err.message : String(err);
    if (this.lastError.get(conn) === message) return;
    this.lastError.set(conn, message);
    this.logger?.warn({ role, err: message }, 'redis bus connection error; sessions poll the store until it recovers');
  }

  private updateHealth(): void {
    const h = this.healthy();
    if (h === this.lastHealth) return;
    this.lastHealth = h;
    for (const fn of [...this.healthListeners]) {
      try {
        fn(h);
      } catch (err) {
        this.logger?.warn({ err: String(err) }, 'redis bus health listener threw');
      }
    }
  }

  /** Queue a reconciliation of one channel with what its handlers want. */
  private sync(it: Interest): Promise<void> {
    it.queued++;
    const run = async (): Promise<void> => {
      let generation = -1;
      try {
        const want = it.handlers.size > 0 && !this.closed;
        if (want === it.confirmed) return;
        // Down: every interest is unconfirmed already and the reconnect path subscribes what is wanted.
        if (this.sub.status !== 'ready') return;
        generation = this.subGeneration;
        if (want) {
          await this.sub.subscribe(it.channel);
          if (generation === this.subGeneration) it.confirmed = true;
        } else {
          await this.sub.unsubscribe(it.channel);
          if (generation === this.subGeneration) it.confirmed = false;
        }
      } catch (err) {
        this.noteError(this.sub, 'subscriber', err);
        // If the socket closed, the close handler unconfirmed everything and the reconnect
        // resubscribes. If it did not (a timeout on a slow or silent link), Redis and this
        // node may disagree about the channel: reconnecting puts them back in step.
        if (generation === this.subGeneration && !this.closed) this.forceReconnect(this.sub);
      } finally {
        it.queued--;
        if (it.queued === 0 && it.handlers.size === 0 && !it.confirmed && this.interests.get(it.channel) === it) {
          this.interests.delete(it.channel);
        }
      }
    };
    const p = it.chain.then(run);
    it.chain = p;
    return p;
  }

  private replyChannel(nodeId: string): string {
    return `${this.prefix}n:${nodeId}`;
  }

  /**
   * Subscribe this node's reply channel, once per subscriber connection and only when the
   * node first publishes an ephemeral message (nodes that never do keep one channel per user).
   */
  private async ensureReplyChannel(): Promise<boolean> {
    const generation = this.subGeneration;
    if (this.replyGeneration === generation) return true;
    if (this.sub.status !== 'ready') return false;
    try {
      await this.sub.subscribe(this.replyChannel(this.nodeId));
    } catch (err) {
      this.noteError(this.sub, 'subscriber', err);
      return false;
    }
    if (generation !== this.subGeneration) return false;
    this.replyGeneration = generation;
    return true;
  }

  private async resubscribeAll(): Promise<void> {
    const generation = this.subGeneration;
    const wantedUnconfirmed = (): Interest[] => [...this.interests.values()].filter((it) => it.handlers.size > 0 && !it.confirmed);
    let todo = wantedUnconfirmed();
    const hadChannels = todo.length > 0;
    // Subscribes that arrive meanwhile queue their own sync; a few rounds settle them.
    for (let round = 0; todo.length > 0 && round < 3; round++) {
      await Promise.all(todo.map((it) => this.sync(it)));
      if (this.closed || generation !== this.subGeneration || this.sub.status !== 'ready') return;
      todo = wantedUnconfirmed();
    }
    if (todo.length > 0) {
      // SUBSCRIBE keeps failing without the socket closing (e.g. timeouts): reconnecting
      // is the one recovery that covers every case.
      this.forceReconnect(this.sub);
      return;
    }
    if (hadChannels) this.counters.resubscribes++;
    this.subUp = true;
    this.updateHealth();
  }

  private dispatch(channel: string, payload: string): void {
    if (channel === this.replyChannel(this.nodeId)) {
      this.replies.onReply(payload);
      return;
    }
    const it = this.interests.get(channel);
    const wake = it && it.handlers.size > 0 ? decodeWake(payload) : undefined;
    if (it && (!wake || wake.user !== it.user)) {
      this.counters.malformed++;
      return;
    }
    let took = 0;
    if (it && wake) {
      this.counters.received++;
      for (const ref of [...it.handlers]) {
        try {
          if (ref.fn(wake) === true) took++;
        } catch (err) {
          this.logger?.warn({ user: it.user, err: String(err) }, 'wake handler threw');
        }
      }
    }
    // Answer every ephemeral that reached this node, even with 0 (a channel we just left):
    // the publisher waits for as many answers as PUBLISH counted.
    const reply = wake?.reply ?? (it ? undefined : replyOf(payload));
    if (reply && this.pub.status === 'ready') {
      this.pub.publish(this.replyChannel(reply.to), ReachReplies.encode(reply.ref, took)).catch((err: unknown) => this.noteError(this.pub, 'publisher', err));
    }
  }

  private defer(wake: Wake): void {
    if (this.opts.maxDeferredUsers === 0) return;
    const prev = this.deferred.get(wake.user);
    if (prev) {
      if (wake.seq > prev.seq || wake.epoch !== prev.epoch) this.deferred.set(wake.user, { user: wake.user, epoch: wake.epoch, seq: wake.seq });
      return;
    }
    if (this.deferred.size >= this.opts.maxDeferredUsers) {
      this.counters.deferredDropped++;
      return;
    }
    this.deferred.set(wake.user, { user: wake.user, epoch: wake.epoch, seq: wake.seq });
  }

  private flushDeferred(): void {
    if (this.deferred.size === 0) return;
    const wakes = [...this.deferred.values()];
    this.deferred.clear();
    for (const wake of wakes) {
      this.pub.publish(this.channelFor(wake.user), encodeWake(wake, 0)).then(
        () => {
          this.counters.republished++;
        },
        () => {
          this.defer(wake);
        },
      );
    }
  }

  /** A socket can stay open with nobody answering; an unanswered ping forces a reconnect. */
  private pingBoth(): void {
    for (const conn of [this.pub, this.sub]) {
      if (conn.status !== 'ready') continue;
      conn.ping().catch((err: unknown) => {
        if (this.closed || conn.status !== 'ready') return;
        this.noteError(conn, conn === this.pub ? 'publisher' : 'subscriber', err);
        this.forceReconnect(conn);
      });
    }
  }

  /** Drop a link that stopped answering; unhealthy at once, not when the socket finally closes. */
  private forceReconnect(conn: Redis): void {
    if (this.forcing.has(conn)) return;
    this.forcing.add(conn);
    conn.once('close', () => this.forcing.delete(conn));
    if (conn === this.pub) this.pubUp = false;
    else this.subUp = false;
    this.updateHealth();
    conn.disconnect(true);
  }
}

/** The reply address of an ephemeral wake that arrived on a channel we no longer want. */
function replyOf(payload: string): { to: string; ref: string } | undefined {
  if (!payload.includes('"reply"')) return undefined;
  return decodeWake(payload)?.reply;
}

async function quitOrDisconnect(conn: Redis): Promise<void> {
  if (conn.status === 'ready') {
    try {
      await conn.quit();
      return;
    } catch {
      // fall through: a dead link cannot say goodbye
    }
  }
  conn.disconnect();
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
 * src/gateway/bus.ts calls). Connected, or UNAVAILABLE if Redis cannot be reached.
 */
export function createRedisBus(url: string, extra: Omit<RedisBusOptionsInput, 'url'> & { logger?: BusLogger } = {}): Promise<RedisBus> {
  return openRedisBus({ ...extra, url });
}

function stripLogger(options: RedisBusOptionsInput & { logger?: BusLogger }): RedisBusOptionsInput {
  const { logger: _logger, ...rest } = options;
  return rest;
}

/** The URL without a password, for logs and errors. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid url)';
  }
}
