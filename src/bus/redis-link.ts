/**
 * The parts both Redis buses (one server: src/bus/redis.ts; Redis Cluster:
 * src/bus/redis-cluster.ts) share: connection options and backoff, error logging,
 * health listeners, deferred wake-ups, and the subscriber link with its per-channel
 * state machine.
 *
 * Subscriber link: one connection in subscriber mode, classic (SUBSCRIBE, 'message')
 * or sharded (SSUBSCRIBE, 'smessage'). Per channel it keeps
 *
 *   wanted    whether the bus wants the channel subscribed on this link now
 *   confirmed true once Redis acknowledged the subscribe on the current connection
 *
 *   Every change of `wanted` enqueues a sync on the channel's own promise chain. A sync
 *   compares wanted with confirmed and sends (S)SUBSCRIBE or (S)UNSUBSCRIBE. Syncs of
 *   one channel run one after another and each decides from the state at the moment it
 *   runs, so any interleaving of concurrent calls ends with Redis matching the last
 *   wanted state. A channel is forgotten once it is neither wanted nor confirmed and no
 *   sync is queued.
 *
 * Connection: ready -> (socket closes) -> reconnecting -> ready -> ...
 *
 *   On close every channel becomes unconfirmed and the connection generation moves on,
 *   so a reply from an older connection never marks a channel confirmed. ioredis's own
 *   resubscribe and command replay are off: on ready the link subscribes every wanted
 *   channel itself and reports up only after Redis confirmed them all. Commands are
 *   never queued while down (they fail at once), so nothing stale is sent after a
 *   reconnect. A ping that goes unanswered, or a subscribe that times out without the
 *   socket closing, drops the connection on purpose: reconnecting is the one recovery
 *   that covers every case.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { backoffDelay } from '../core/backoff.js';
import type { Bus, Wake, WakeHandler } from './contract.js';
import { decodeWake } from './wake-codec.js';

/** The subset of a pino logger the buses use. */
export interface BusLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Reconnect delay: exponential from 50 ms up to `maxDelayMs`, equal jitter (src/core/backoff.ts). */
export function reconnectDelay(attempt: number, maxDelayMs: number): number {
  return backoffDelay(attempt, { baseMs: 50, maxMs: maxDelayMs, jitter: 'equal' }).delayMs;
}

export interface LinkTiming {
  commandTimeoutMs: number;
  reconnectMaxDelayMs: number;
}

/** ioredis options for every bus connection (the reasons are the bus's, see the header). */
export function linkOptions(t: LinkTiming): RedisOptions {
  return {
    lazyConnect: true,
    // Fail commands at once while down instead of queueing them: a queued SUBSCRIBE or
    // PUBLISH replayed after a reconnect would be stale; the bus does its own recovery.
    enableOfflineQueue: false,
    // Reject in-flight commands when the socket closes (0 = flush on every close).
    maxRetriesPerRequest: 0,
    autoResubscribe: false,
    autoResendUnfulfilledCommands: false,
    connectTimeout: t.commandTimeoutMs * 2,
    commandTimeout: t.commandTimeoutMs,
    keepAlive: 10_000,
    // A link dropped for not answering is not waited on to close gracefully.
    disconnectTimeout: Math.min(t.commandTimeoutMs, 1000),
    retryStrategy: (attempt) => reconnectDelay(attempt, t.reconnectMaxDelayMs),
  };
}

/** Logs a connection error once per distinct message, and "back" once it recovers. */
export class ErrorNotes {
  private readonly last = new Map<string, string>();
  constructor(
    private readonly logger: BusLogger | undefined,
    private readonly isClosed: () => boolean,
  ) {}

  note(role: string, err: unknown): void {
    if (this.isClosed()) return;
    const message = err instanceof Error ? err.message : String(err);
    if (this.last.get(role) === message) return;
    this.last.set(role, message);
    this.logger?.warn({ role, err: message }, 'redis bus connection error; sessions poll the store until it recovers');
  }

  recovered(role: string): void {
    if (this.last.delete(role)) this.logger?.info({ role }, 'redis bus connection is back');
  }
}

/** Health listeners, told only on a change. */
export class HealthSignal {
  private readonly listeners = new Set<(healthy: boolean) => void>();
  private last = false;
  constructor(private readonly logger: BusLogger | undefined) {}

  on(fn: (healthy: boolean) => void): () => void {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  }

  /** Returns true when the health changed. */
  set(healthy: boolean): boolean {
    if (healthy === this.last) return false;
    this.last = healthy;
    for (const fn of [...this.listeners]) {
      try {
        fn(healthy);
      } catch (err) {
        this.logger?.warn({ err: String(err) }, 'redis bus health listener threw');
      }
    }
    return true;
  }

  clear(): void {
    this.listeners.clear();
  }
}

/**
 * Wake-ups that could not be published, kept as the newest seq per user without the
 * message (bounded), to be published again once the link is back.
 */
export class DeferredWakes {
  private readonly wakes = new Map<string, Wake>();
  dropped = 0;
  constructor(private readonly maxUsers: number) {}

  get size(): number {
    return this.wakes.size;
  }

  add(wake: Wake): void {
    if (this.maxUsers === 0) return;
    const bare = { user: wake.user, epoch: wake.epoch, seq: wake.seq };
    const prev = this.wakes.get(wake.user);
    if (prev) {
      if (wake.seq > prev.seq || wake.epoch !== prev.epoch) this.wakes.set(wake.user, bare);
      return;
    }
    if (this.wakes.size >= this.maxUsers) {
      this.dropped++;
      return;
    }
    this.wakes.set(wake.user, bare);
  }

  /** Everything kept, emptied. */
  take(): Wake[] {
    const all = [...this.wakes.values()];
    this.wakes.clear();
    return all;
  }

  clear(): void {
    this.wakes.clear();
  }
}

export async function quitOrDisconnect(conn: Redis): Promise<void> {
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

/** Drop a connection that stopped answering; `onDrop` runs at once, not when the socket finally closes. */
export function forceReconnect(conn: Redis, forcing: Set<Redis>, onDrop: () => void): void {
  if (forcing.has(conn)) return;
  forcing.add(conn);
  conn.once('close', () => forcing.delete(conn));
  onDrop();
  conn.disconnect(true);
}

interface ChannelState {
  wanted: boolean;
  confirmed: boolean;
  chain: Promise<void>;
  queued: number;
}

export interface SubscriberLinkOptions {
  /** Classic pub/sub (one server) or sharded pub/sub (Redis Cluster, Redis 7). */
  sharded: boolean;
  /** Role name in logs, e.g. `subscriber` or `subscriber 10.0.0.5:6379`. */
  role: string;
  errors: ErrorNotes;
  onMessage(channel: string, payload: string): void;
  /** Called whenever `up` may have changed. */
  onChange(): void;
  isClosed(): boolean;
}

/** One subscriber connection and the channels wanted on it (see the header). */
export class SubscriberLink {
  readonly conn: Redis;
  private readonly channels = new Map<string, ChannelState>();
  private readonly forcing = new Set<Redis>();
  private generation = 0;
  private up = false;
  /** Times every wanted channel was subscribed again after a reconnect. */
  resubscribes = 0;

  constructor(
    target: string | RedisOptions,
    options: RedisOptions,
    private readonly o: SubscriberLinkOptions,
  ) {
    this.conn = typeof target === 'string' ? new Redis(target, options) : new Redis({ ...options, ...target });
    this.conn.on('error', (err: unknown) => o.errors.note(o.role, err));
    this.conn.on(o.sharded ? 'smessage' : 'message', (channel: string, payload: string) => o.onMessage(channel, payload));
    this.conn.on('ready', () => {
      o.errors.recovered(o.role);
      // Failures inside are handled (noted, then a reconnect); this only catches the unexpected.
      this.resubscribeAll().catch((err: unknown) => o.errors.note(o.role, err));
    });
    this.conn.on('close', () => {
      this.generation++;
      this.up = false;
      for (const st of this.channels.values()) st.confirmed = false;
      o.onChange();
    });
  }

  connect(): void {
    // Failures are reported through 'error' and `isUp()`.
    this.conn.connect().catch(() => undefined);
  }

  /** Ready, and every wanted channel confirmed by Redis. */
  isUp(): boolean {
    return this.up;
  }

  /** True once Redis confirmed the channel on the current connection. */
  isConfirmed(channel: string): boolean {
    return this.channels.get(channel)?.confirmed === true;
  }

  /** Channels wanted on this link now. */
  wantedCount(): number {
    let n = 0;
    for (const st of this.channels.values()) if (st.wanted) n++;
    return n;
  }

  /** Want a channel subscribed (or not); resolves once that state is reached or cannot be now. */
  want(channel: string, wanted: boolean): Promise<void> {
    let st = this.channels.get(channel);
    if (!st) {
      if (!wanted) return Promise.resolve();
      st = { wanted, confirmed: false, chain: Promise.resolve(), queued: 0 };
      this.channels.set(channel, st);
    }
    st.wanted = wanted;
    return this.sync(channel, st);
  }

  /** An unanswered ping means a silently dead link: drop it. */
  ping(): void {
    if (this.conn.status !== 'ready') return;
    this.conn.ping().catch((err: unknown) => {
      if (this.o.isClosed() || this.conn.status !== 'ready') return;
      this.o.errors.note(this.o.role, err);
      this.drop();
    });
  }

  async close(): Promise<void> {
    for (const st of this.channels.values()) st.wanted = false;
    this.channels.clear();
    await quitOrDisconnect(this.conn);
  }

  private drop(): void {
    forceReconnect(this.conn, this.forcing, () => {
      this.up = false;
      this.o.onChange();
    });
  }

  private sync(channel: string, st: ChannelState): Promise<void> {
    st.queued++;
    const run = async (): Promise<void> => {
      let generation = -1;
      try {
        const want = st.wanted && !this.o.isClosed();
        if (want === st.confirmed) return;
        // Down: every channel is unconfirmed already and the reconnect path subscribes what is wanted.
        if (this.conn.status !== 'ready') return;
        generation = this.generation;
        if (want) {
          await (this.o.sharded ? this.conn.ssubscribe(channel) : this.conn.subscribe(channel));
          if (generation === this.generation) st.confirmed = true;
        } else {
          await (this.o.sharded ? this.conn.sunsubscribe(channel) : this.conn.unsubscribe(channel));
          if (generation === this.generation) st.confirmed = false;
        }
      } catch (err) {
        this.o.errors.note(this.o.role, err);
        // If the socket closed, the close handler unconfirmed everything and the reconnect
        // resubscribes. If it did not (a timeout on a slow or silent link), Redis and this
        // node may disagree about the channel: reconnecting puts them back in step.
        if (generation === this.generation && !this.o.isClosed()) this.drop();
      } finally {
        st.queued--;
        if (st.queued === 0 && !st.wanted && !st.confirmed && this.channels.get(channel) === st) this.channels.delete(channel);
      }
    };
    const p = st.chain.then(run);
    st.chain = p;
    return p;
  }

  private async resubscribeAll(): Promise<void> {
    const generation = this.generation;
    const todoNow = (): Array<[string, ChannelState]> => [...this.channels].filter(([, st]) => st.wanted && !st.confirmed);
    let todo = todoNow();
    const hadChannels = todo.length > 0;
    // Subscribes that arrive meanwhile queue their own sync; a few rounds settle them.
    for (let round = 0; todo.length > 0 && round < 3; round++) {
      await Promise.all(todo.map(([ch, st]) => this.sync(ch, st)));
      if (this.o.isClosed() || generation !== this.generation || this.conn.status !== 'ready') return;
      todo = todoNow();
    }
    if (todo.length > 0) {
      this.drop();
      return;
    }
    if (hadChannels) this.resubscribes++;
    this.up = true;
    this.o.onChange();
  }
}

/** Local handlers of one user's channel; each subscribe() call is its own reference. */
export interface Interest {
  user: string;
  handlers: Set<{ fn: WakeHandler }>;
}

/** Hand a decoded wake-up to every local handler of its channel; returns how many took an ephemeral one. */
export function deliverWake(it: Interest, wake: Wake, logger: BusLogger | undefined): number {
  let took = 0;
  for (const ref of [...it.handlers]) {
    try {
      if (ref.fn(wake) === true) took++;
    } catch (err) {
      logger?.warn({ user: it.user, err: String(err) }, 'wake handler threw');
    }
  }
  return took;
}

/** The reply address of an ephemeral wake that arrived on a channel we no longer want. */
export function replyOf(payload: string): { to: string; ref: string } | undefined {
  if (!payload.includes('"reply"')) return undefined;
  return decodeWake(payload)?.reply;
}

/** Resolves true once `bus` is healthy, or false after `timeoutMs`. */
export function waitHealthy(bus: Pick<Bus, 'healthy' | 'onHealth'>, timeoutMs: number): Promise<boolean> {
  if (bus.healthy()) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      off();
      resolve(false);
    }, timeoutMs);
    const off = bus.onHealth((h) => {
      if (!h) return;
      clearTimeout(timer);
      off();
      resolve(true);
    });
  });
}
