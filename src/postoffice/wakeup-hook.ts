/**
 * The offline wake-up hook: when a message is stored for a user none of whose devices
 * is connected, tell the integrator (a webhook POST or an in-process callback) so it can
 * send a content-free push (FCM/APNs). The payload names the user and their registered
 * devices, never the message: `{ user, devices, pendingHint }`.
 *
 * It never slows a send. The `stored` listener only does map lookups and pushes onto a
 * bounded queue (when the queue is full the wake-up is dropped and counted); a few
 * workers drain the queue, each call with a timeout and retries with exponential backoff.
 *
 * At most one call per user per `intervalMs` (counted from the call's start, whatever
 * its outcome). A user seen online when the worker gets to them is skipped and not
 * throttled. Presence is what the gateway tells us (see Presence); with several nodes
 * and node-local presence, a user connected to another node looks offline here: see
 * docs/operations.md.
 */
import { z } from 'zod';
import { backoffDelay } from '../core/backoff.js';
import { parseConfig } from '../core/config.js';
import type { DeviceId, UserId } from '../core/ids.js';
import { systemClock, type Clock, type MailboxStats } from '../core/types.js';
import type { PostOffice } from './post-office.js';

/** Which devices of a user have a live session. The gateway implements this. */
export interface Presence {
  connectedDevices(user: UserId): readonly DeviceId[] | Promise<readonly DeviceId[]>;
}

/** What the webhook receives (JSON) and the callback is given. No message content, ever. */
export interface WakeupPayload {
  user: UserId;
  /** The user's registered devices (all offline when the hook was called). */
  devices: DeviceId[];
  /** How many messages were pending when the hook was called. */
  pendingHint?: number;
}

export type WakeupCallback = (payload: WakeupPayload, signal: AbortSignal) => void | Promise<void>;

export const WakeupHookConfigSchema = z
  .object({
    /** Webhook URL to POST the payload to. */
    url: z.url().optional(),
    /** Extra request headers, e.g. an Authorization the receiver checks. */
    headers: z.record(z.string(), z.string()).default({}),
    intervalMs: z.number().int().min(0).default(60_000),
    timeoutMs: z.number().int().min(1).default(5_000),
    retries: z.number().int().min(0).max(20).default(3),
    backoffMs: z.number().int().min(0).default(1_000),
    maxQueue: z.number().int().min(1).default(10_000),
    concurrency: z.number().int().min(1).max(256).default(4),
    /** Senders whose messages never trigger the hook (e.g. the receipts sender). */
    ignoreSenders: z.array(z.string()).default([]),
  })
  .strict();
export type WakeupHookConfig = z.output<typeof WakeupHookConfigSchema>;
export type WakeupHookConfigInput = z.input<typeof WakeupHookConfigSchema>;

export type WakeupOutcome = 'delivered' | 'failed' | 'dropped' | 'throttled' | 'online';

export interface WakeupHookOptions {
  config?: WakeupHookConfigInput;
  /** In-process alternative (or addition) to the webhook URL. */
  callback?: WakeupCallback;
  presence: Presence;
  /**
   * Cluster-wide throttle: resolves true for the one caller that may call the hook for
   * `user` in this interval (e.g. a Redis SET NX). Without it the limit is per process.
   */
  claim?: (user: UserId, intervalMs: number) => Promise<boolean>;
  /** Devices and pending count for the payload; attach() uses the post office's. */
  stats?: (user: UserId) => Promise<MailboxStats>;
  clock?: Clock;
  /** Told of every outcome, for metrics and logs. */
  onOutcome?: (user: UserId, outcome: WakeupOutcome, detail?: { attempts?: number; error?: string }) => void;
}

class HttpStatusError extends Error {
  constructor(readonly status: number) {
    super(`webhook answered ${status}`);
  }
  get retryable(): boolean {
    return this.status >= 500 || this.status === 408 || this.status === 429;
  }
}

export class WakeupHook {
  readonly config: WakeupHookConfig;
  private readonly callback: WakeupCallback | undefined;
  private readonly presence: Presence;
  private readonly claim: WakeupHookOptions['claim'];
  private readonly clock: Clock;
  private readonly onOutcome: WakeupHookOptions['onOutcome'];
  /** Where devices and the pending count come from; set by attach() or the options. */
  private stats: ((user: UserId) => Promise<MailboxStats>) | undefined;
  private readonly lastCall = new Map<UserId, number>(); // insertion order = call order
  private readonly queue: UserId[] = [];
  private readonly queued = new Set<UserId>();
  private active = 0;
  private readonly abort = new AbortController();
  private readonly sleeps = new Set<{ timer: NodeJS.Timeout; done: () => void }>();
  private idleWaiters: Array<() => void> = [];
  private closed = false;

  constructor(opts: WakeupHookOptions) {
    this.config = parseConfig(WakeupHookConfigSchema, opts.config ?? {}, 'wake-up hook config');
    if (!this.config.url && !opts.callback) throw new Error('wake-up hook needs a url or a callback');
    this.callback = opts.callback;
    this.presence = opts.presence;
    this.claim = opts.claim;
    this.stats = opts.stats;
    this.clock = opts.clock ?? systemClock;
    this.onOutcome = opts.onOutcome;
  }

  /** Listen to a post office's `stored` events. Returns the function that stops listening. */
  attach(po: PostOffice): () => void {
    this.stats = (user) => po.stats(user);
    const ignore = new Set(this.config.ignoreSenders);
    return po.events.on('stored', (e) => {
      if (!ignore.has(e.message.from)) this.notify(e.user);
    });
  }

  /** A message was stored for `user`. Synchronous and cheap: it only decides whether to queue. */
  notify(user: UserId): void {
    if (this.closed || this.queued.has(user)) return;
    if (this.throttled(user)) return this.report(user, 'throttled');
    const devices = this.presence.connectedDevices(user);
    if (!isPromise(devices) && devices.length > 0) return this.report(user, 'online');
    if (this.queue.length >= this.config.maxQueue) return this.report(user, 'dropped');
    this.queue.push(user);
    this.queued.add(user);
    this.pump();
  }

  private throttled(user: UserId): boolean {
    const now = this.clock.now();
    const interval = this.config.intervalMs;
    // Forget calls older than the interval, oldest first (the map is in call order).
    for (const [u, t] of this.lastCall) {
      if (now - t < interval) break;
      this.lastCall.delete(u);
    }
    const last = this.lastCall.get(user);
    return last !== undefined && now - last < interval;
  }

  private report(user: UserId, outcome: WakeupOutcome, detail?: { attempts?: number; error?: string }): void {
    try {
      this.onOutcome?.(user, outcome, detail);
    } catch {
      // an outcome listener must not break the hook
    }
  }

  private pump(): void {
    while (!this.closed && this.active < this.config.concurrency && this.queue.length > 0) {
      const user = this.queue.shift()!;
      this.active++;
      this.run(user)
        // run() reports its own outcomes; arriving here is a bug, reported as a failed call.
        .catch((err: unknown) => this.report(user, 'failed', { error: String(err) }))
        .finally(() => {
          this.queued.delete(user);
          this.active--;
          this.pump();
          if (this.active === 0 && this.queue.length === 0) {
            const waiters = this.idleWaiters;
            this.idleWaiters = [];
            for (const w of waiters) w();
          }
        });
    }
  }

  private async run(user: UserId): Promise<void> {
    try {
      const online = await this.presence.connectedDevices(user);
      if (online.length > 0) return this.report(user, 'online');
      if (this.throttled(user)) return this.report(user, 'throttled');
      this.lastCall.delete(user);
      this.lastCall.set(user, this.clock.now());
      // Another node called (or is calling) for this user within the interval. A failing
      // claim errs towards calling: an extra push beats a missed one.
      if (this.claim && !(await this.claim(user, this.config.intervalMs).catch(() => true))) return this.report(user, 'throttled');
      const payload: WakeupPayload = { user, devices: [] };
      if (this.stats) {
        const s = await this.stats(user);
        payload.devices = s.devices.map((d) => d.device);
        payload.pendingHint = s.pending;
      }
      let attempts = 0;
      for (;;) {
        attempts++;
        try {
          await this.call(payload);
          return this.report(user, 'delivered', { attempts });
        } catch (err) {
          const retryable = !(err instanceof HttpStatusError) || err.retryable;
          if (this.closed || !retryable || attempts > this.config.retries) {
            return this.report(user, 'failed', { attempts, error: err instanceof Error ? err.message : String(err) });
          }
          await this.sleep(backoffDelay(attempts - 1, { baseMs: this.config.backoffMs, maxMs: Infinity, jitter: 'none' }).delayMs);
        }
      }
    } catch (err) {
      this.report(user, 'failed', { error: err instanceof Error ? err.message : String(err) });
    }
  }

  private async call(payload: WakeupPayload): Promise<void> {
    const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.config.timeoutMs)]);
    if (this.callback) await this.callback(payload, signal);
    if (this.config.url) {
      const res = await fetch(this.config.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...this.config.headers },
        body: JSON.stringify(payload),
        signal,
      });
      // Drain the body so the connection can be reused; its content means nothing to us.
      await res.arrayBuffer().catch(() => undefined);
      if (!res.ok) throw new HttpStatusError(res.status);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          this.sleeps.delete(entry);
          resolve();
        }, ms),
        done: resolve,
      };
      entry.timer.unref();
      this.sleeps.add(entry);
    });
  }

  /** Resolves when the queue is empty and no call is in flight. */
  idle(): Promise<void> {
    if (this.active === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  get queueLength(): number {
    return this.queue.length;
  }

  /** Stop: drop what is queued, abort calls in flight, wait for workers to finish. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const u of this.queue) this.queued.delete(u);
    this.queue.length = 0;
    this.abort.abort();
    for (const s of this.sleeps) {
      clearTimeout(s.timer);
      s.done();
    }
    this.sleeps.clear();
    await this.idle();
  }
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown })?.then === 'function';
}
