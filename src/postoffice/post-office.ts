/**
 * The post office: the service the gateway, the CLI and library users call.
 *
 * It validates every input with a schema (bad input is a typed BAD_REQUEST and never
 * reaches the store; a gateway send its frame schema already checked comes branded
 * through sendChecked and is not parsed twice), stamps time from an injectable clock,
 * groups concurrent sends into one store append (group commit: one transaction, one
 * fsync), and announces what changed as in-process events. The store does the rest
 * atomically.
 */
import { bodyByteLength, type Body } from '../core/bytes.js';
import { PoboxError, toPoboxError, closedError } from '../core/errors.js';
import { parseConfig, PostOfficeConfigSchema, senderLimits, type PostOfficeConfig, type PostOfficeConfigInput } from '../core/config.js';
import type { DeviceId, Seq, UserId } from '../core/ids.js';
import {
  systemClock,
  type AckResult,
  type Clock,
  type DeviceCursor,
  type DeviceStart,
  type EphemeralMessage,
  type EphemeralResult,
  type GroupSendResult,
  type MailboxStats,
  type RecipientOutcome,
  type ReadPage,
  type SendResult,
  type StoredMessage,
} from '../core/types.js';
import { parseInput } from '../core/validate.js';
import type { AppendItem, ExportPage, MailboxSnapshot, MailboxStore, PurgeOutcome, ReadRequest, RegisterOutcome, RestoreOutcome } from '../store/contract.js';
import { TypedEmitter } from '../core/emitter.js';
import type { PostOfficeEvents } from './events.js';
import { isStoreTimeout, StoreGuard, type WriteHealth } from './store-guard.js';
import { MailboxSnapshotSchema, SnapshotBuilder, type ImportLimits, type MailboxSnapshotInput } from './snapshot.js';
import {
  AckInputSchema,
  ExportInputSchema,
  DeviceInputSchema,
  EphemeralInputSchema,
  GroupSendInputSchema,
  ReadInputSchema,
  SendInputSchema,
  UserInputSchema,
  type EphemeralInput,
  type CheckedSendInput,
  type GroupSendInput,
  type ParsedSendInput,
  type SendInput,
} from './schemas.js';

export interface PostOfficeOptions {
  store: MailboxStore;
  config?: PostOfficeConfigInput;
  clock?: Clock;
  /** Start the background sweeper (default true when config.retention.sweepIntervalMs > 0). */
  sweeper?: boolean;
}

/**
 * Runs before an ack's cursor move, with the range (cursor, upTo] still stored, so it can
 * read what is about to be acked (delivery receipts do). Throwing fails the ack.
 * `noReceiptAsked`: the caller vouches that no message of this device in that range asked
 * for a receipt (see AckOptions), so a hook that looks only for those need not read.
 */
export type BeforeAckHook = (ack: { user: UserId; device: DeviceId; upTo: Seq; noReceiptAsked: boolean }) => Promise<void>;

export interface AckOptions {
  /** An admin skipping a backlog: not a delivery (no receipts; the device gets a gap notice). */
  adminSkip?: boolean;
  /**
   * The caller itself handed the device every message of its mailbox in (cursor, upTo] and
   * none of them asked for a receipt (the gateway's session knows this for the messages it
   * delivered on its connection; see DeviceSession.flushAcks). Receipts then skip their read
   * of the range. Leave it unset when in doubt: unset only costs that read.
   */
  noReceiptAsked?: boolean;
}

/**
 * Hands an ephemeral message to the recipient's connected devices and says how many it
 * reached. The gateway installs one (local sessions + the bus); without one, nothing is
 * connected and every ephemeral send reaches 0.
 */
export type EphemeralRoute = (message: EphemeralMessage) => Promise<number>;

interface PendingSend {
  item: AppendItem;
  resolve: (r: SendResult) => void;
  reject: (e: PoboxError) => void;
  /** Set on the first item of a group send: its items (this one and the next unit - 1) share one batch. */
  unit?: number;
}

/** The deadline of one restore (a whole mailbox in one store call), unless storeTimeoutMs is longer. */
const RESTORE_TIMEOUT_MS = 300_000;

/** The stored message an appended item became: one object, built field by field (no rest copy and spread per message). */
function storedOf(item: AppendItem, seq: Seq): StoredMessage {
  const m: StoredMessage = { seq, id: item.id, from: item.from, to: item.to, body: item.body, bytes: item.bytes, sentAt: item.sentAt, expiresAt: item.expiresAt };
  if (item.toDevice !== undefined) m.toDevice = item.toDevice;
  if (item.receipt) m.receipt = true;
  return m;
}

export class PostOffice {
  readonly config: PostOfficeConfig;
  readonly store: MailboxStore;
  readonly events = new TypedEmitter<PostOfficeEvents>();
  private readonly clock: Clock;
  private queue: PendingSend[] = [];
  private flushScheduled = false;
  private readonly inflight = new Set<Promise<void>>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<number> | undefined;
  private closed = false;
  private readonly beforeAckHooks = new Set<BeforeAckHook>();
  private ephemeralRoute: EphemeralRoute | undefined;
  /** Deadline, error typing and write health around every store call (store-guard.ts). */
  private readonly guard: StoreGuard;

  constructor(opts: PostOfficeOptions) {
    this.store = opts.store;
    this.config = parseConfig(PostOfficeConfigSchema, opts.config ?? {}, 'post office config');
    this.clock = opts.clock ?? systemClock;
    this.guard = new StoreGuard(this.config.storeTimeoutMs);
    this.store.onBackgroundFailure?.((err) => this.events.emit('backgroundFailure', { source: 'store_delete', err }));
    const interval = this.config.retention.sweepIntervalMs;
    if ((opts.sweeper ?? true) && interval > 0) {
      this.sweepTimer = setInterval(() => void this.sweepNow().catch((err: unknown) => this.events.emit('backgroundFailure', { source: 'sweeper', err })), interval);
      this.sweepTimer.unref();
    }
  }

  now(): number {
    return this.clock.now();
  }

  private ensureOpen(): void {
    if (this.closed) throw closedError('post office');
  }

  /**
   * Store a message. Resolves with its seq once it is durable; a resend of the same id
   * to the same recipient resolves with the original seq and `duplicate: true`.
   */
  send(input: SendInput): Promise<SendResult> {
    return this.enqueue(input, false);
  }

  /**
   * `send` for input already checked against SendInputSchema by its caller (the gateway's
   * frame schema; see CheckedSendInput): the same send without parsing it a second time
   * (a zod parse per message was ~0.6 KiB and ~2 us on the gateway's hot path). Limits that
   * depend on this post office (body size, ttl maximum) are still checked here.
   * @internal
   */
  sendChecked(input: CheckedSendInput): Promise<SendResult> {
    return this.enqueue(input, true);
  }

  private enqueue(input: SendInput, checked: boolean): Promise<SendResult> {
    let item: AppendItem;
    try {
      this.ensureOpen();
      item = this.prepareParsed(checked ? (input as CheckedSendInput) : parseInput(SendInputSchema, input, 'send'));
    } catch (err) {
      const e = toPoboxError(err);
      this.events.emit('rejected', { code: e.code, ...(typeof (input as { to?: unknown })?.to === 'string' ? { to: (input as { to: string }).to } : {}) });
      return Promise.reject(e);
    }
    return new Promise<SendResult>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // setImmediate lets every send issued in this turn of the event loop join the batch.
      setImmediate(() => this.flush());
    }
  }

  /**
   * Store the same message for each of `to` (a group send). All of it goes to the store
   * in ONE append batch (on the embedded engine one log record, one fsync; DynamoDB
   * writes each recipient's mailbox through the same append). Each recipient gets its own
   * seq, its own dedupe on `id` and its own outcome: a full mailbox refuses only its
   * owner. Resolves once every stored item is durable, with the results in `to`'s order;
   * rejects only for input that is wrong as a whole (BAD_REQUEST, PAYLOAD_TOO_LARGE) or a
   * closed post office.
   */
  sendGroup(input: GroupSendInput): Promise<GroupSendResult> {
    let items: AppendItem[];
    try {
      this.ensureOpen();
      const msg = parseInput(GroupSendInputSchema, input, 'send');
      const max = this.config.limits.maxRecipients;
      if (msg.to.length > max) throw new PoboxError('BAD_REQUEST', `send: to names ${msg.to.length} recipients; the limit is ${max}`, { field: 'to' });
      // Parsed as a whole just above: each field is what SendInputSchema asks of it.
      const first = this.prepareParsed({ ...msg, to: msg.to[0]! });
      items = msg.to.map((to) => ({ ...first, to }));
    } catch (err) {
      const e = toPoboxError(err);
      this.events.emit('rejected', { code: e.code });
      return Promise.reject(e);
    }
    return new Promise<GroupSendResult>((resolve) => {
      const results: RecipientOutcome[] = new Array<RecipientOutcome>(items.length);
      let left = items.length;
      const settle = (i: number, r: RecipientOutcome): void => {
        results[i] = r;
        if (--left === 0) resolve({ durable: true, results });
      };
      items.forEach((item, i) => {
        const p: PendingSend = {
          item,
          resolve: (r) => settle(i, { to: item.to, ok: true, seq: r.seq, duplicate: r.duplicate, epoch: r.epoch }),
          reject: (e) => settle(i, { to: item.to, ok: false, error: e }),
        };
        if (i === 0) p.unit = items.length;
        this.queue.push(p);
      });
      this.scheduleFlush();
    });
  }

  /** Install the route ephemeral sends take (the gateway does); returns the remover. */
  setEphemeralRoute(route: EphemeralRoute): () => void {
    this.ephemeralRoute = route;
    return () => {
      if (this.ephemeralRoute === route) this.ephemeralRoute = undefined;
    };
  }

  /**
   * Hand a message to the recipient's devices connected right now, on any node. Nothing
   * is stored, no quota is touched, no seq is used: it never appears in a drain or stats.
   */
  async sendEphemeral(input: EphemeralInput): Promise<EphemeralResult> {
    let message: EphemeralMessage;
    try {
      this.ensureOpen();
      const msg = parseInput(EphemeralInputSchema, input, 'send');
      message = { id: msg.id, from: msg.from, to: msg.to, body: msg.body, bytes: this.bodyBytes(msg.body), sentAt: this.clock.now() };
      if (msg.toDevice !== undefined) message.toDevice = msg.toDevice;
    } catch (err) {
      const e = toPoboxError(err);
      this.events.emit('rejected', { code: e.code, ...(typeof (input as { to?: unknown })?.to === 'string' ? { to: (input as { to: string }).to } : {}) });
      throw e;
    }
    const reached = this.ephemeralRoute ? await this.ephemeralRoute(message) : 0;
    return { ephemeral: true, reached, durable: false };
  }

  /** The body's size in bytes (UTF-8 for text), refused with PAYLOAD_TOO_LARGE over the limit. */
  private bodyBytes(body: Body): number {
    const bytes = bodyByteLength(body);
    const maxBody = Math.min(this.config.limits.maxBodyBytes, this.store.capabilities.maxBodyBytes ?? Infinity);
    if (bytes > maxBody) {
      throw new PoboxError('PAYLOAD_TOO_LARGE', `body is ${bytes} bytes; the limit is ${maxBody}`, { field: 'body' });
    }
    return bytes;
  }

  /** The item a parsed send becomes; refuses what this post office's limits refuse. */
  private prepareParsed(msg: ParsedSendInput): AppendItem {
    const bytes = this.bodyBytes(msg.body);
    const { defaultTtlSeconds, maxTtlSeconds } = this.config.retention;
    if (msg.ttlSeconds !== undefined && msg.ttlSeconds > maxTtlSeconds) {
      throw new PoboxError('BAD_REQUEST', `ttlSeconds ${msg.ttlSeconds} exceeds the maximum ${maxTtlSeconds}`, { field: 'ttlSeconds' });
    }
    const sentAt = this.clock.now();
    const item: AppendItem = {
      id: msg.id,
      from: msg.from,
      to: msg.to,
      body: msg.body,
      bytes,
      sentAt,
      expiresAt: sentAt + (msg.ttlSeconds ?? defaultTtlSeconds) * 1000,
    };
    if (msg.toDevice !== undefined) item.toDevice = msg.toDevice;
    if (msg.receipt) item.receipt = true;
    if (msg.senderQuotaExempt) item.senderQuotaExempt = true;
    return item;
  }

  private flush(): void {
    this.flushScheduled = false;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.batchEnd());
      const p: Promise<void> = this.commit(batch)
        // commit() settles every send itself; arriving here is a bug: fail the batch rather than leave it waiting.
        .catch((err: unknown) => {
          const e = toPoboxError(err, 'INTERNAL');
          for (const s of batch) s.reject(e);
        })
        .then(() => {
          this.inflight.delete(p);
        });
      this.inflight.add(p);
    }
  }

  /**
   * How many queued sends the next batch takes: up to maxBatch, never splitting a group
   * send (a group larger than maxBatch is a batch of its own).
   */
  private batchEnd(): number {
    const max = this.config.maxBatch;
    let n = 0;
    while (n < this.queue.length) {
      const unit = this.queue[n]!.unit ?? 1;
      if (n > 0 && n + unit > max) break;
      n += unit;
    }
    return n;
  }

  private async commit(batch: PendingSend[]): Promise<void> {
    const { limits } = this.config;
    const appending = this.store.append(
      batch.map((p) => p.item),
      { maxMailboxMessages: limits.maxMailboxMessages, maxMailboxBytes: limits.maxMailboxBytes, ...senderLimits(limits) },
    );
    const refuse = (e: PoboxError): void => {
      for (const p of batch) {
        this.events.emit('rejected', { code: e.code, to: p.item.to });
        p.reject(e);
      }
    };
    let outcomes;
    try {
      outcomes = await this.guard.call('append', appending, true);
    } catch (err) {
      const e = toPoboxError(err, 'UNAVAILABLE');
      refuse(e);
      if (!isStoreTimeout(e)) return;
      // Past the deadline the senders were answered UNAVAILABLE, but the append may still
      // land: announce what it stored so recipients are woken (the senders' retries are
      // answered as duplicates).
      try {
        outcomes = await appending;
        this.guard.wrote(undefined);
      } catch {
        return;
      }
    }
    batch.forEach((p, i) => {
      const o = outcomes[i];
      if (!o) {
        p.reject(new PoboxError('INTERNAL', 'store returned no outcome for a message'));
      } else if (!o.ok) {
        this.events.emit('rejected', { code: o.error.code, to: p.item.to });
        p.reject(o.error);
      } else {
        if (!o.duplicate) this.events.emit('stored', { user: p.item.to, epoch: o.epoch, message: storedOf(p.item, o.seq) });
        else this.events.emit('resent', { user: p.item.to, epoch: o.epoch, seq: o.seq });
        p.resolve({ seq: o.seq, duplicate: o.duplicate, durable: true, epoch: o.epoch });
      }
    });
  }

  /** Store writes failing in a row, for readiness and metrics. */
  writeHealth(): WriteHealth {
    return this.guard.writeHealth();
  }

  onWriteHealth(fn: (h: WriteHealth) => void): () => void {
    return this.guard.onWriteHealth(fn);
  }

  /**
   * A durable write that touches no mailbox anyone reads: a message of the largest allowed
   * size (at most 64 KiB) to a reserved probe user that expires at once (the sweeper removes it). Readiness calls it while writes
   * are failing, so a node taken out of rotation notices when the store takes writes again.
   */
  async probeWrite(probeUser: UserId, deadlineMs: number): Promise<void> {
    this.ensureOpen();
    const now = this.clock.now();
    // As large as the largest message a send may carry (up to 64 KiB): "ready" means a real
    // send would fit, not merely that a few bytes still do on an almost full disk.
    const bytes = Math.min(64 * 1024, this.config.limits.maxBodyBytes, this.store.capabilities.maxBodyBytes ?? Infinity);
    const body = 'p'.repeat(bytes);
    const item: AppendItem = { id: `probe-${now}-${Math.random().toString(36).slice(2, 10)}`, from: probeUser, to: probeUser, body, bytes, sentAt: now, expiresAt: now + 1000 };
    const appending = this.store.append([item], { maxMailboxMessages: Number.MAX_SAFE_INTEGER, maxMailboxBytes: Number.MAX_SAFE_INTEGER });
    try {
      await new StoreGuard(Math.min(deadlineMs, this.config.storeTimeoutMs)).call('readiness write', appending, true);
      this.guard.wrote(undefined);
    } catch (err) {
      this.guard.wrote(toPoboxError(err, 'UNAVAILABLE'));
      throw err;
    }
  }

  /** A read with the store deadline, for probes that bypass validation (readiness). */
  async probeRead(probeUser: UserId, deadlineMs: number): Promise<void> {
    this.ensureOpen();
    await new StoreGuard(Math.min(deadlineMs, this.config.storeTimeoutMs)).call('readiness read', this.store.stats(probeUser, this.clock.now()), false);
  }

  /** A page of what `device` has not acked, after `afterSeq`. */
  async read(user: UserId, device: DeviceId, afterSeq: Seq, limit: number): Promise<ReadPage> {
    return this.guard.call('read', this.store.read(this.readRequest(user, device, afterSeq, limit)), false);
  }

  /** The store's request for a read, validated (BAD_REQUEST before anything is read). */
  private readRequest(user: UserId, device: DeviceId, afterSeq: Seq, limit: number): ReadRequest {
    this.ensureOpen();
    const q = parseInput(ReadInputSchema, { user, device, afterSeq, limit }, 'read');
    if (q.limit > this.config.limits.maxPageSize) {
      throw new PoboxError('BAD_REQUEST', `read: limit ${q.limit} exceeds the maximum page size ${this.config.limits.maxPageSize}`, { field: 'limit' });
    }
    return { user: q.user, device: q.device, afterSeq: q.afterSeq, limit: q.limit, now: this.clock.now() };
  }

  /**
   * `read`, registering the device first when it has never been seen: a device's first
   * connection or pull. A known device's read is one store call, no write. The store
   * answers an unknown device with `undefined`, not NOT_FOUND: no error is built for
   * each first-time device (a reconnect storm of new devices built 10,000).
   */
  async readOrRegister(user: UserId, device: DeviceId, afterSeq: Seq, limit: number): Promise<ReadPage> {
    const req = this.readRequest(user, device, afterSeq, limit);
    const page = await this.guard.call('read', this.store.readIfRegistered(req), false);
    if (page) return page;
    await this.registerDevice(user, device);
    return this.read(user, device, afterSeq, limit);
  }

  /** Run `hook` before every ack reaches the store (see BeforeAckHook). Returns the remover. */
  addBeforeAckHook(hook: BeforeAckHook): () => void {
    this.beforeAckHooks.add(hook);
    return () => {
      this.beforeAckHooks.delete(hook);
    };
  }

  /** Cumulative ack: `device` has everything up to and including `upTo`. */
  async ack(user: UserId, device: DeviceId, upTo: Seq, opts: AckOptions = {}): Promise<AckResult> {
    this.ensureOpen();
    const q = parseInput(AckInputSchema, { user, device, upTo }, 'ack');
    // Before-ack hooks (delivery receipts) see the range while it is still stored; one that throws fails the ack.
    // An admin skipping a backlog is not a delivery: no receipts, and the device is told what it skipped (a gap notice).
    if (!opts.adminSkip) for (const hook of this.beforeAckHooks) await hook({ user: q.user, device: q.device, upTo: q.upTo, noReceiptAsked: opts.noReceiptAsked === true });
    const r = await this.guard.call('ack', this.store.ack(q.user, q.device, q.upTo, { skip: opts.adminSkip === true }), true);
    if (r.moved) {
      this.events.emit('acked', { user: q.user, device: q.device, cursor: r.cursor, deleted: r.deleted, deletedBytes: r.deletedBytes });
    }
    return { cursor: r.cursor, deleted: r.deleted };
  }

  async registerDevice(user: UserId, device: DeviceId, start: DeviceStart = 'auto'): Promise<RegisterOutcome> {
    this.ensureOpen();
    const q = parseInput(DeviceInputSchema, { user, device, start }, 'device');
    const r = await this.guard.call('registerDevice', this.store.registerDevice(q.user, q.device, q.start, this.clock.now(), this.config.limits.maxDevicesPerUser), true);
    if (r.created) this.events.emit('device', { user: q.user, device: q.device, change: 'registered' });
    // A first device starting at the head has in effect acked what came before it.
    if (r.deleted) this.events.emit('acked', { user: q.user, device: q.device, cursor: r.cursor, deleted: r.deleted, deletedBytes: r.deletedBytes ?? 0 });
    return r;
  }

  async removeDevice(user: UserId, device: DeviceId): Promise<boolean> {
    this.ensureOpen();
    const q = parseInput(DeviceInputSchema, { user, device }, 'device');
    const r = await this.guard.call('removeDevice', this.store.removeDevice(q.user, q.device), true);
    if (r.removed) this.events.emit('device', { user: q.user, device: q.device, change: 'removed' });
    if (r.deleted > 0) this.events.emit('removed', { user: q.user, count: r.deleted, bytes: r.deletedBytes, reason: 'device-removed' });
    return r.removed;
  }

  async listDevices(user: UserId): Promise<DeviceCursor[]> {
    this.ensureOpen();
    const q = parseInput(UserInputSchema, { user }, 'devices');
    return this.guard.call('listDevices', this.store.listDevices(q.user), false);
  }

  async stats(user: UserId): Promise<MailboxStats> {
    this.ensureOpen();
    const q = parseInput(UserInputSchema, { user }, 'stats');
    return this.guard.call('stats', this.store.stats(q.user, this.clock.now()), false);
  }

  /** Delete every stored message of a user (admin). */
  async purge(user: UserId): Promise<PurgeOutcome> {
    this.ensureOpen();
    const q = parseInput(UserInputSchema, { user }, 'purge');
    const r = await this.guard.call('purge', this.store.purge(q.user), true);
    if (r.deleted > 0) this.events.emit('removed', { user: q.user, count: r.deleted, bytes: r.deletedBytes, reason: 'purge' });
    return r;
  }

  /**
   * Export (admin): a page of the user's stored messages with afterSeq < seq <= upTo that
   * some device has not acked, whatever device they are for (expired ones not swept yet too). src/postoffice/export.ts streams them as NDJSON.
   */
  async exportPage(user: UserId, afterSeq: Seq, upTo: Seq, limit: number): Promise<ExportPage> {
    this.ensureOpen();
    const q = parseInput(ExportInputSchema, { user, afterSeq, upTo, limit }, 'export');
    if (q.limit > this.config.limits.maxPageSize) {
      throw new PoboxError('BAD_REQUEST', `export: limit ${q.limit} exceeds the maximum page size ${this.config.limits.maxPageSize}`, { field: 'limit' });
    }
    return this.guard.call('exportPage', this.store.exportPage(q.user, q.afterSeq, q.upTo, q.limit), false);
  }

  /** What one import may hold here: the mailbox quotas, the device limit, and the smaller of the two body limits. */
  importLimits(): ImportLimits {
    const l = this.config.limits;
    return {
      maxBodyBytes: Math.min(l.maxBodyBytes, this.store.capabilities.maxBodyBytes ?? Infinity),
      maxMailboxMessages: l.maxMailboxMessages,
      maxMailboxBytes: l.maxMailboxBytes,
      maxDevices: l.maxDevicesPerUser,
    };
  }

  /**
   * Import (admin): restore a snapshot into an empty mailbox, keeping its epoch, seqs, ids
   * and cursors (CONFLICT when the mailbox is not empty). Checked whole first; the store
   * writes all of it or nothing. One call for the whole mailbox, so its deadline is longer
   * than other store calls' (RESTORE_TIMEOUT_MS).
   */
  async restore(input: MailboxSnapshot | MailboxSnapshotInput): Promise<RestoreOutcome> {
    this.ensureOpen();
    const raw = parseInput(MailboxSnapshotSchema, input, 'restore');
    const b = new SnapshotBuilder(raw.user, raw.epoch, raw.lastSeq, this.importLimits());
    for (const d of raw.devices) b.device({ device: d.device, cursor: d.cursor, registeredAt: d.registeredAt, ...(d.gap ? { gap: d.gap } : {}) });
    for (const m of raw.messages) {
      b.message({
        seq: m.seq,
        id: m.id,
        from: m.from,
        body: m.body,
        sentAt: m.sentAt,
        expiresAt: m.expiresAt,
        ...(m.toDevice !== undefined ? { toDevice: m.toDevice } : {}),
        ...(m.receipt ? { receipt: true } : {}),
      });
    }
    const snapshot = b.finish();
    const guard = new StoreGuard(Math.max(this.config.storeTimeoutMs, RESTORE_TIMEOUT_MS));
    const r = await guard.call('restore', this.store.restore(snapshot), false);
    const oldest = snapshot.messages.reduce<number | undefined>((a, m) => (a === undefined ? m.sentAt : Math.min(a, m.sentAt)), undefined);
    this.events.emit('restored', { user: snapshot.user, epoch: snapshot.epoch, count: r.messages, bytes: r.bytes, ...(oldest !== undefined ? { oldestSentAt: oldest } : {}) });
    return r;
  }

  /** Run the sweeper until nothing expired is left; returns messages expired. */
  sweepNow(): Promise<number> {
    if (this.sweeping) return this.sweeping;
    const run = async (): Promise<number> => {
      let total = 0;
      for (;;) {
        if (this.closed) return total;
        const r = await this.guard.call('sweep', this.store.sweep(this.clock.now(), this.config.retention.sweepBatch), true);
        if (r.expired > 0) this.events.emit('expired', { count: r.expired, bytes: r.expiredBytes });
        total += r.expired;
        if (!r.more) return total;
      }
    };
    this.sweeping = run().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  /** Stop taking sends, finish the commits in flight, stop the sweeper, close the store. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.queue.length > 0) this.flush();
    this.closed = true;
    await Promise.allSettled([...this.inflight]);
    if (this.sweeping) await this.sweeping.catch(() => undefined);
    await this.store.close();
  }
}
