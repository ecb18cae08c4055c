/**
 * Prometheus metrics for one pobox server. Each server builds its own registry (no
 * process-wide default), so several servers in one process, as in the tests, never
 * share or double-count a series.
 *
 * What feeds what:
 *  - post office events (attachPostOffice): sent, acked, expired, removed, rejected,
 *    pending messages and bytes (kept incrementally, never by scanning);
 *  - the gateway: delivered, drains, live latency, connections, sessions, and the
 *    rejections it makes itself (auth, rate) through `rejected()`;
 *  - instrumentStore / instrumentBus wrappers: store and bus latency;
 *  - the wake-up hook and receipts: their own outcome counters.
 * docs/operations.md lists every series with its meaning.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ErrorCode } from '../core/errors.js';
import type { StoreCapacity } from '../store/contract.js';
import { OPEN_SESSION_STATES, type SessionState } from '../gateway/session-state.js';

/** Why a send was refused, as the `reason` label of pobox_messages_rejected_total. */
export type RejectReason = 'quota' | 'size' | 'rate' | 'auth' | 'bad_input' | 'unavailable';

export function rejectReason(code: ErrorCode | string): RejectReason {
  switch (code) {
    case 'MAILBOX_FULL':
    case 'SENDER_QUOTA':
      return 'quota';
    case 'PAYLOAD_TOO_LARGE':
      return 'size';
    case 'RATE_LIMITED':
      return 'rate';
    case 'UNAUTHORIZED':
    case 'FORBIDDEN':
      return 'auth';
    case 'BAD_REQUEST':
    case 'NOT_FOUND':
      return 'bad_input';
    default:
      return 'unavailable';
  }
}

export type DeliveryPath = 'drain' | 'live';

export interface MetricsOptions {
  /** Also export Node's process metrics (CPU, memory, event loop lag) with the pobox_ prefix. */
  processMetrics?: boolean;
}

// Latency buckets in seconds: 100 µs .. 10 s, for store calls and deliveries alike.
const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const DRAIN_SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300];
const DRAIN_MESSAGES_BUCKETS = [0, 1, 10, 100, 1000, 10_000, 100_000];

export class PoboxMetrics {
  readonly registry = new Registry();

  readonly sent: Counter;
  readonly delivered: Counter<'path'>;
  readonly acks: Counter;
  readonly acked: Counter;
  readonly expired: Counter;
  readonly removed: Counter<'reason'>;
  readonly rejectedTotal: Counter<'reason'>;
  readonly pendingMessages: Gauge;
  readonly pendingBytes: Gauge;
  readonly oldestPendingAge: Gauge;
  readonly drainSeconds: Histogram;
  readonly drainMessages: Histogram;
  readonly liveLatency: Histogram;
  readonly connections: Gauge;
  readonly connectionsTotal: Counter;
  readonly connectionsRefused: Counter<'reason'>;
  readonly sessions: Gauge<'state'>;
  /** Message frames delivered since the last scrape, by path (handed to `delivered` when scraped). */
  private readonly deliveredSince: Record<DeliveryPath, number> = { drain: 0, live: 0 };
  /** Open sessions by state, kept here and set on `sessions` when scraped. */
  private readonly sessionCounts = new Map<SessionState, number>();
  readonly onlineUsers: Gauge;
  readonly storeSeconds: Histogram<'engine' | 'op' | 'outcome'>;
  readonly storeCapacityUnits: Counter<'kind'>;
  readonly storeRequests: Counter;
  readonly busPublishSeconds: Histogram<'bus'>;
  readonly busWakeSeconds: Histogram<'bus'>;
  readonly wakeupHook: Counter<'outcome'>;
  readonly receipts: Counter<'outcome'>;
  readonly backgroundFailures: Counter<'source'>;
  readonly storeWriteFailures: Gauge;
  readonly ready: Gauge;
  private oldestProbe: (() => Promise<void>) | undefined;
  private onlineUsersProbe: (() => number) | undefined;
  private capacityProbe: (() => StoreCapacity) | undefined;

  constructor(opts: MetricsOptions = {}) {
    const registers = [this.registry];
    this.sent = new Counter({ name: 'pobox_messages_sent_total', help: 'Messages stored durably (duplicates of an already stored id are not counted).', registers });
    // Counted in plain fields on the hot path (every message frame, every session move) and
    // handed to prom-client when scraped: its labelled inc() hashes the labels on each call.
    const delivered = this.deliveredSince;
    this.delivered = new Counter({
      name: 'pobox_messages_delivered_total',
      help: 'Message frames sent to devices, by path: drain (backlog at connect) or live (woken while connected).',
      labelNames: ['path'],
      registers,
      collect() {
        for (const path of ['drain', 'live'] as const) {
          if (delivered[path] > 0) this.inc({ path }, delivered[path]);
          delivered[path] = 0;
        }
      },
    });
    this.acks = new Counter({ name: 'pobox_acks_total', help: 'Acks that moved a device cursor forward.', registers });
    this.acked = new Counter({ name: 'pobox_messages_acked_total', help: 'Messages deleted because every device of the recipient acked them.', registers });
    this.expired = new Counter({ name: 'pobox_messages_expired_total', help: 'Messages deleted by the sweeper because they expired.', registers });
    this.removed = new Counter({
      name: 'pobox_messages_removed_total',
      help: 'Messages deleted by an admin purge or a device removal.',
      labelNames: ['reason'],
      registers,
    });
    this.rejectedTotal = new Counter({
      name: 'pobox_messages_rejected_total',
      help: 'Sends refused, by reason: quota, size, rate, auth, bad_input, unavailable.',
      labelNames: ['reason'],
      registers,
    });
    this.pendingMessages = new Gauge({ name: 'pobox_pending_messages', help: 'Messages stored and not yet deleted (see docs/operations.md for multi-node).', registers });
    this.pendingBytes = new Gauge({ name: 'pobox_pending_bytes', help: 'Body bytes of pending messages.', registers });
    this.oldestPendingAge = new Gauge({
      name: 'pobox_oldest_pending_age_seconds',
      help: 'Age of the oldest pending message this node knows of, checked against the store at scrape time.',
      registers,
      // prom-client awaits collect() on every scrape; a failing probe keeps the last value.
      collect: async () => {
        await this.oldestProbe?.().catch(() => undefined);
      },
    });
    this.drainSeconds = new Histogram({ name: 'pobox_drain_duration_seconds', help: 'From session start to the caughtUp marker.', buckets: DRAIN_SECONDS_BUCKETS, registers });
    this.drainMessages = new Histogram({ name: 'pobox_drain_messages', help: 'Messages sent per drain.', buckets: DRAIN_MESSAGES_BUCKETS, registers });
    this.liveLatency = new Histogram({
      name: 'pobox_live_delivery_latency_seconds',
      help: 'From a message being stamped by the post office to its live frame being written to the socket.',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.connections = new Gauge({ name: 'pobox_connections', help: 'Open WebSocket connections.', registers });
    this.connectionsTotal = new Counter({ name: 'pobox_connections_total', help: 'WebSocket connections accepted.', registers });
    this.connectionsRefused = new Counter({
      name: 'pobox_connections_refused_total',
      help: 'WebSocket connection attempts refused before a session started, by reason: unauthorized, rate-limited, shutting-down, bad-request (an unknown encoding).',
      labelNames: ['reason'],
      registers,
    });
    const sessionCounts = this.sessionCounts;
    for (const state of OPEN_SESSION_STATES) sessionCounts.set(state, 0);
    this.sessions = new Gauge({
      name: 'pobox_sessions',
      help: `Device sessions on this node by state (${OPEN_SESSION_STATES.join(', ')}), kept from the sessions' state changes.`,
      labelNames: ['state'],
      registers,
      collect() {
        for (const [state, n] of sessionCounts) this.set({ state }, n);
      },
    });
    for (const state of OPEN_SESSION_STATES) this.sessions.set({ state }, 0);
    this.onlineUsers = new Gauge({
      name: 'pobox_online_users',
      help: 'Users with at least one device connected to this node.',
      registers,
      collect: () => {
        const online = this.onlineUsersProbe?.();
        if (online !== undefined) this.onlineUsers.set(online);
      },
    });
    this.storeSeconds = new Histogram({
      name: 'pobox_store_operation_seconds',
      help: 'Store call latency by engine, operation and outcome.',
      labelNames: ['engine', 'op', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    // Read from the store on each scrape: the engine keeps the running totals.
    this.storeCapacityUnits = new Counter({
      name: 'pobox_store_capacity_units_total',
      help: "Capacity units the store's backing service reported for this node's requests (DynamoDB ReturnConsumedCapacity), by kind: read, write, failed_write (conditional writes refused by their condition, which DynamoDB bills and reports in no response: counted by the engine at 1 unit per KB of the item). Not exported by the embedded engine.",
      labelNames: ['kind'],
      registers,
      collect: () => {
        const c = this.capacityProbe?.();
        if (!c) return;
        this.storeCapacityUnits.reset();
        this.storeCapacityUnits.inc({ kind: 'read' }, c.readUnits);
        this.storeCapacityUnits.inc({ kind: 'write' }, c.writeUnits);
        // Conditional writes refused by their condition: billed, but reported by no response (the engine counts them).
        if (c.failedWriteUnits !== undefined) this.storeCapacityUnits.inc({ kind: 'failed_write' }, c.failedWriteUnits);
      },
    });
    this.storeRequests = new Counter({
      name: 'pobox_store_requests_total',
      help: "Requests this node sent to the store's backing service (DynamoDB), retries included; 0 for the embedded engine.",
      registers,
      collect: () => {
        const c = this.capacityProbe?.();
        if (!c) return;
        this.storeRequests.reset();
        this.storeRequests.inc(c.requests);
      },
    });
    this.busPublishSeconds = new Histogram({
      name: 'pobox_bus_publish_seconds',
      help: 'Time for the bus to accept a wake-up (a Redis round trip on the Redis bus).',
      labelNames: ['bus'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.busWakeSeconds = new Histogram({
      name: 'pobox_bus_wakeup_latency_seconds',
      help: 'From a message being stamped to its wake-up reaching a subscriber (wake-ups that carry the message only).',
      labelNames: ['bus'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.wakeupHook = new Counter({
      name: 'pobox_wakeup_hook_total',
      help: 'Offline wake-up hook outcomes: delivered, failed (after retries), dropped (queue full), throttled, online.',
      labelNames: ['outcome'],
      registers,
    });
    this.receipts = new Counter({
      name: 'pobox_receipts_total',
      help: 'Delivery receipts: stored, duplicate (already stored), dropped (sender mailbox full or sender invalid).',
      labelNames: ['outcome'],
      registers,
    });
    this.backgroundFailures = new Counter({
      name: 'pobox_background_failures_total',
      help: 'Failures of work no request waits for, by source: sweeper, store_delete, presence, wakeup_hook, wake_publish.',
      labelNames: ['source'],
      registers,
    });
    this.storeWriteFailures = new Gauge({
      name: 'pobox_store_consecutive_write_failures',
      help: 'Store writes (appends, acks) that failed in a row; reset by the next write that succeeds.',
      registers,
    });
    this.ready = new Gauge({ name: 'pobox_ready', help: '1 when the last /readyz answered 200, 0 when it answered 503.', registers });
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'pobox_' });
  }

  /** Set by attachPostOffice: refreshes the oldest-pending gauge on each scrape. */
  setOldestProbe(probe: (() => Promise<void>) | undefined): void {
    this.oldestProbe = probe;
  }

  // ---- called by the gateway -----------------------------------------------------

  /** A send refused before or by the post office. The post office's own refusals arrive through attachPostOffice. */
  rejected(code: ErrorCode | string): void {
    this.rejectedTotal.inc({ reason: rejectReason(code) });
  }

  /** A message frame was written to a device. For live frames, `sentAt` gives the latency. */
  deliveredMessage(path: DeliveryPath, sentAt?: number, now = Date.now()): void {
    this.deliveredSince[path]++;
    if (path === 'live' && sentAt !== undefined) this.liveLatency.observe(Math.max(0, now - sentAt) / 1000);
  }

  /** A drain ended with the caughtUp marker. */
  drained(seconds: number, messages: number): void {
    this.drainSeconds.observe(seconds);
    this.drainMessages.observe(messages);
  }

  connectionOpened(): void {
    this.connections.inc();
    this.connectionsTotal.inc();
  }

  connectionClosed(): void {
    this.connections.dec();
  }

  /** A session moved from one state to another (`from` absent: a new session); a closed session is counted no more. */
  sessionMoved(from: SessionState | undefined, to: SessionState): void {
    const counts = this.sessionCounts;
    if (from !== undefined && counts.has(from)) counts.set(from, counts.get(from)! - 1);
    if (counts.has(to)) counts.set(to, counts.get(to)! + 1);
  }

  /** Set by the server: the users connected to it, counted on each scrape. */
  setOnlineUsersProbe(probe: (() => number) | undefined): void {
    this.onlineUsersProbe = probe;
  }

  /** Set by the server when its store reports consumed capacity (DynamoDB): read on each scrape. */
  setCapacityProbe(probe: (() => StoreCapacity) | undefined): void {
    this.capacityProbe = probe;
  }

  /** The Prometheus text exposition and its content type, for GET /metrics. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

export function createMetrics(opts: MetricsOptions = {}): PoboxMetrics {
  return new PoboxMetrics(opts);
}
