/**
 * The DynamoDB engine: many stateless gateway nodes share one table (layout in keys.ts,
 * docs/dynamodb.md). Loaded only when chosen; the AWS SDK is an optional dependency.
 *
 * One transaction only, the sweeper's (a tombstone must be written with the update that
 * counts it: sweep.ts). A send reserves its seqs with one conditional UpdateItem of the
 * user's meta item and then writes the dedupe entry and the message with conditional
 * puts (append.ts); a seq whose writer died is a hole that readers close with a tombstone
 * after a lease, and a writer that finds its seq closed takes a new one (holes.ts).
 * Every other change to the meta item is a conditional update of only the attributes it
 * changes, conditioned on the device-state version `ver`, except acks, which are
 * conditioned only on what they computed from, so a user's devices acking on different
 * nodes do not invalidate each other (meta-writes.ts ackUpdate has the argument). Acks
 * delete nothing: acked messages are released (below a cursor or the floor, never shown
 * again) and native TTL deletes them for free (released.ts). An ack by a node that read
 * the range it releases is one UpdateItem and no read.
 */
import { DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import type { z } from 'zod';
import { DynamoDbConfigSchema, parseConfig, type DynamoDbConfig } from '../../core/config.js';
import { PoboxError, deviceNotRegistered, tooManyDevices, ackBeyondLastSeq, closedError } from '../../core/errors.js';
import type { DeviceId, Seq, UserId } from '../../core/ids.js';
import type { DeviceCursor, DeviceStart, MailboxStats, ReadPage } from '../../core/types.js';
import type {
  AckOptions,
  AckOutcome,
  AppendItem,
  AppendLimits,
  AppendOutcome,
  ExportPage,
  MailboxSnapshot,
  MailboxStore,
  PurgeOutcome,
  ReadRequest,
  RegisterOutcome,
  RemoveOutcome,
  RestoreOutcome,
  StoreCapabilities,
  StoreCounters,
  SweepOutcome,
} from '../contract.js';
import {
  deviceList,
  ackChanges,
  gapAfterAck,
  gapAfterSkip,
  gapsAfterRemoval,
  hasDevice,
  minCursor,
  planAfterAck,
  planAfterRegister,
  planAfterRemove,
  startCursor,
  type DeletePlan,
  type Removed,
} from '../rules.js';
import { appendForUser, emptyMeta, type AppendSettings, type Entry } from './append.js';
import { decodeMessage, MAX_BODY_BYTES, seqRecord, type MetaValue, type SeqRecord } from './codec.js';
import { Holes } from './holes.js';
import { messageSk, USERS_GPK } from './keys.js';
import { UserLanes } from './lanes.js';
import { ensureLayout } from './layout.js';
import { ackUpdate, addDeviceUpdate, addSender, sameItems, senderDecrements, stateUpdate, type MetaUpdate, type SenderDecrement, type StateChange } from './meta-writes.js';
import { StaleRead, TableClient, type CapacityCounters } from './queries.js';
import { isReleased } from './released.js';
import { contentionPause, DEFAULT_RETRY, withinBudget, type RetryPolicy } from './retry.js';
import { sweep, type SweepState } from './sweep.js';
import { readOnce } from './read.js';
import { exportPage, restore } from './restore.js';

export type { CapacityCounters } from './queries.js';

export interface DynamoDbStoreOptions {
  table: string;
  client: DynamoDBClient;
  /** Close the client on close() (true when the store created it). */
  ownsClient?: boolean;
  ttlGraceSeconds?: number;
  retry?: Partial<RetryPolicy>;
  /** Most items a read examines (other devices' or expired) before returning a short page. */
  scanBudget?: number;
  /** Users appended to concurrently within one batch. */
  userConcurrency?: number;
  /** How long a hole (a reserved seq without its message) is waited for before a reader closes it. */
  holeLeaseMs?: number;
  /** Test hook: runs after a send reserved its seqs and before it writes anything else. */
  afterReserve?: (user: UserId, seqs: Seq[]) => Promise<void>;
}

const MAX_SK = messageSk(Number.MAX_SAFE_INTEGER);
/** Mailboxes whose last seen meta item this node keeps, for acks without a read. */
const CACHED_MAILBOXES = 10_000;

/** Seqs (lo, hi] this node read with no hole left, and what it found there (a seq missing from `items` is a closed hole). */
interface Resolved {
  lo: Seq;
  hi: Seq;
  items: Map<Seq, SeqRecord>;
}

/** What this node last saw of a mailbox: the meta item, and a range of seqs it read. */
interface Seen {
  meta: MetaValue;
  resolved?: Resolved;
}

/** Read attempts that wait for a hole before a page may end short of it. */
const SHORT_PAGE_AFTER = 3;
/** Read-free tries of one ack (each after a failed condition that returned the item as it is). */
const FAST_ACK_ATTEMPTS = 3;
/** Item summaries kept per mailbox, at most. */
const MAX_REMEMBERED_ITEMS = 4096;

interface Victims {
  sks: string[];
  count: number;
  bytes: number;
  senders: SenderDecrement[];
  /** The messages counted (not released before), for the gap notices a purge leaves. */
  removed: Removed[];
}

export class DynamoDbStore implements MailboxStore {
  readonly engine = 'dynamodb';
  readonly capabilities: StoreCapabilities = { embedded: false, maxBodyBytes: MAX_BODY_BYTES };

  private readonly t: TableClient;
  private readonly ttlGraceSeconds: number;
  private readonly scanBudget: number;
  private readonly userConcurrency: number;
  private readonly ownsClient: boolean;
  private closed = false;
  /** Appends of this instance to one user go one after another, coalesced (lanes.ts). */
  private readonly lanes: UserLanes;
  private readonly holes: Holes;
  private readonly seen = new Map<UserId, Seen>();
  private readonly sweepState: SweepState = {};
  private layoutChecked: Promise<void> | undefined;
  /** Messages released (acked, purged, swept) and left in the table for native TTL to delete. */
  private orphaned = 0;
  private readonly backgroundListeners = new Set<(err: unknown) => void>();

  constructor(opts: DynamoDbStoreOptions) {
    this.t = new TableClient(opts.client, opts.table, { ...DEFAULT_RETRY, ...opts.retry });
    this.ttlGraceSeconds = opts.ttlGraceSeconds ?? 86_400;
    this.scanBudget = opts.scanBudget ?? 1000;
    this.userConcurrency = opts.userConcurrency ?? 16;
    this.ownsClient = opts.ownsClient ?? false;
    this.holes = new Holes(this.t, opts.holeLeaseMs ?? 3000, this.ttlGraceSeconds);
    const settings: AppendSettings = {
      ttlGraceSeconds: this.ttlGraceSeconds,
      holes: this.holes,
      remember: (user, meta) => this.remember(user, meta),
      ...(opts.afterReserve ? { afterReserve: opts.afterReserve } : {}),
    };
    this.lanes = new UserLanes((user, entries, limits, out) => appendForUser(this.t, settings, user, entries, limits, out));
  }

  counters(): StoreCounters {
    return { ...this.t.counts };
  }

  /** Read and write capacity units DynamoDB reported for this store's requests (exported on /metrics; the extra fields are for tests and benchmarks). */
  capacity(): CapacityCounters & { orphaned: number; holesClosed: number } {
    return { ...this.t.capacity, orphaned: this.orphaned, holesClosed: this.holes.closed };
  }

  /** Deletes that failed and were left for native TTL are reported here (logged and counted by the server). */
  onBackgroundFailure(listener: (err: unknown) => void): void {
    this.backgroundListeners.add(listener);
  }

  /** Open checks, once: the table holds layout 2 (or is empty). Retried on the next call if it failed. */
  private async ready(): Promise<void> {
    if (this.closed) throw closedError('store');
    this.layoutChecked ??= ensureLayout(this.t).catch((err: unknown) => {
      this.layoutChecked = undefined;
      throw err;
    });
    await this.layoutChecked;
  }

  private remember(user: UserId, meta: MetaValue, resolved?: Resolved): void {
    const prev = this.seen.get(user);
    this.seen.delete(user);
    if (this.seen.size >= CACHED_MAILBOXES) this.seen.delete(this.seen.keys().next().value!);
    let r = resolved ?? prev?.resolved;
    // Ranges read one after the other chain up: everything from lo on was read.
    if (resolved && prev?.resolved && resolved.lo >= prev.resolved.lo && resolved.lo <= prev.resolved.hi && resolved.hi >= prev.resolved.hi) {
      const items = prev.resolved.items;
      for (const [seq, rec] of resolved.items) items.set(seq, rec);
      r = { lo: prev.resolved.lo, hi: resolved.hi, items };
    }
    if (r && r.items.size > MAX_REMEMBERED_ITEMS) r = undefined;
    this.seen.set(user, r ? { meta, resolved: r } : { meta });
  }

  async append(items: readonly AppendItem[], limits: AppendLimits): Promise<AppendOutcome[]> {
    const out: AppendOutcome[] = new Array(items.length);
    try {
      await this.ready();
    } catch (err) {
      const e = err instanceof PoboxError ? err : new PoboxError('UNAVAILABLE', `DynamoDB store not ready: ${(err as Error).message}`, { cause: err });
      return items.map(() => ({ ok: false, error: e }));
    }
    const byUser = new Map<UserId, Entry[]>();
    items.forEach((item, index) => {
      const list = byUser.get(item.to) ?? [];
      list.push({ index, item });
      byUser.set(item.to, list);
    });
    const queue = [...byUser];
    const worker = async (): Promise<void> => {
      for (let next = queue.shift(); next; next = queue.shift()) await this.lanes.append(next[0], next[1], limits, out);
    };
    await Promise.all(Array.from({ length: Math.min(this.userConcurrency, queue.length) }, worker));
    return out;
  }

  async read(req: ReadRequest): Promise<ReadPage> {
    await this.ready();
    const startedAt = Date.now();
    for (let attempt = 0; ; attempt++) {
      const r = await readOnce(this.t, this.holes, req, this.scanBudget, this.seen.get(req.user)?.meta.lastSeq, attempt >= SHORT_PAGE_AFTER);
      if (r) {
        this.remember(req.user, r.meta, { lo: r.start, hi: r.page.nextAfter, items: new Map([...r.known].filter(([seq]) => seq <= r.page.nextAfter)) });
        return r.page;
      }
      // A hole younger than the lease: its message is probably being written. Read again.
      if (!withinBudget(startedAt, this.t.retry)) throw new PoboxError('UNAVAILABLE', `mailbox of ${req.user} kept changing during a read; try again`);
      await contentionPause(attempt, this.t.retry);
    }
  }

  /**
   * `read`, undefined for an unknown device. Here the NOT_FOUND of readOnce is caught:
   * building that error costs nothing beside the Query's round trip.
   */
  async readIfRegistered(req: ReadRequest): Promise<ReadPage | undefined> {
    try {
      return await this.read(req);
    } catch (err) {
      if (err instanceof PoboxError && err.code === 'NOT_FOUND') return undefined;
      throw err;
    }
  }

  /**
   * The messages a plan releases (not released already), read before the meta item
   * commits. Holes in the ranges are settled first: a message still being written must
   * not land below a cursor unseen. Undefined when one must be waited for.
   */
  private async collect(user: UserId, meta: MetaValue, plan: DeletePlan): Promise<Victims | undefined> {
    const v: Victims = { sks: [], count: 0, bytes: 0, senders: [], removed: [] };
    const bySender = new Map<UserId, { count: number; bytes: number }>();
    for (const range of [plan.all, plan.targeted]) {
      if (!range || range.hi <= range.lo) continue;
      const device = range === plan.targeted ? plan.targeted.device : undefined;
      const missing: Seq[] = [];
      const known = new Map<Seq, SeqRecord>();
      // At or below the floor everything is released: gaps there were deleted, never holes.
      let expected = Math.max(range.lo, meta.floor) + 1;
      await this.t.queryRange(user, messageSk(range.lo + 1), messageSk(range.hi), 1000, (items) => {
        for (const item of items) {
          const rec = seqRecord(item);
          for (let s = expected; s < rec.seq; s++) missing.push(s);
          expected = Math.max(expected, rec.seq + 1);
          known.set(rec.seq, rec);
          if (rec.tomb) continue;
          const m = decodeMessage(item);
          if (device !== undefined && m.toDevice !== device) continue;
          v.sks.push(messageSk(m.seq));
          if (isReleased(meta, m.seq, m.toDevice)) continue; // already counted as released
          v.count++;
          v.bytes += m.bytes;
          v.removed.push({ seq: m.seq, toDevice: m.toDevice });
          addSender(bySender, m.from, m.bytes);
        }
        return true;
      });
      for (let s = expected; s <= range.hi; s++) missing.push(s);
      if ((await this.holes.settle(user, meta, missing, known)) !== undefined) return undefined;
    }
    v.senders = senderDecrements(meta, bySender);
    return v;
  }

  /** Delete released messages now (purge); if DynamoDB refuses, native TTL deletes them later. */
  private async dropReleased(user: UserId, sks: string[]): Promise<void> {
    try {
      await this.t.deleteMany(user, sks);
    } catch (err) {
      this.leftBehind(sks.length, err);
    }
  }

  private leftBehind(count: number, err: unknown): void {
    this.orphaned += count;
    for (const listener of this.backgroundListeners) listener(err);
  }

  /** Retry `fn` when a conditional meta write lost a race to another node, or a hole must be waited for. */
  private async optimistic<T>(fn: () => Promise<T>): Promise<T> {
    await this.ready();
    const startedAt = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof StaleRead)) throw err;
        if (!withinBudget(startedAt, this.t.retry)) throw new PoboxError('UNAVAILABLE', 'too many concurrent changes to one mailbox; try again', { cause: err });
        this.t.capacity.retries++;
        await contentionPause(attempt, this.t.retry);
      }
    }
  }

  private async collectOrWait(user: UserId, meta: MetaValue, plan: DeletePlan): Promise<Victims> {
    const v = await this.collect(user, meta, plan);
    if (!v) throw new StaleRead('a seq in the range is still being written');
    return v;
  }

  /**
   * A device added or removed and what it releases, in one
   * meta write conditioned on the device state read (ver), not on last: sends go on
   * meanwhile. The counters drop by what `plan` releases and the floor moves; the released
   * items are left to native TTL.
   */
  private async releaseWith(user: UserId, meta: MetaValue, plan: DeletePlan, change: Pick<StateChange, 'addDevice' | 'removeDevice'>): Promise<Victims> {
    const victims = await this.collectOrWait(user, meta, plan);
    const after = await this.t.updateMeta(
      user,
      stateUpdate({ expectedVer: meta.ver, ...change, floor: newFloor(meta, plan), countDelta: -victims.count, bytesDelta: -victims.bytes, senders: victims.senders }),
    );
    this.remember(user, after);
    this.orphaned += victims.count;
    return victims;
  }

  async ack(user: UserId, device: DeviceId, upToSeq: Seq, opts: AckOptions = {}): Promise<AckOutcome> {
    await this.ready();
    const fast = opts.skip ? undefined : await this.ackFromSeen(user, device, upToSeq);
    if (fast) return fast;
    return this.optimistic(async () => {
      const meta = await this.t.getMeta(user);
      if (!meta || !hasDevice(meta.devices, device)) throw deviceNotRegistered(user, device);
      if (upToSeq > meta.lastSeq) throw ackBeyondLastSeq(upToSeq, meta.lastSeq);
      const dev = meta.devices[device]!;
      if (upToSeq <= dev.cursor) {
        const unchanged = { cursor: dev.cursor, moved: false, deleted: 0, deletedBytes: 0 };
        if (opts.skip || !ackChanges(dev, upToSeq)) return unchanged;
        // The ack reaches a notice the cursor is past already (an admin's skip left it): only the notice goes.
        this.remember(user, await this.t.updateMeta(user, ackUpdate({ read: meta, device, gap: null })));
        return unchanged;
      }
      const oldMin = minCursor(meta.devices);
      const devices = { ...meta.devices, [device]: { ...dev, cursor: upToSeq } };
      const newMin = minCursor(devices);
      // The targeted range starts at the old cursor: holes below the new cursor must be settled, whoever they are for.
      const plan = planAfterAck(oldMin, newMin, device, dev.cursor, upToSeq);
      // An admin's skip notes what it passes (read with the device state the write is conditioned on).
      const skipped = opts.skip ? gapAfterSkip(dev.gap, await this.unacked(user, meta, device, upToSeq)) : undefined;
      const gap = !opts.skip ? gapCleared(meta, device, upToSeq) : skipped ? { gap: skipped } : {};
      const victims = await this.collectOrWait(user, meta, plan);
      const after = await this.t.updateMeta(
        user,
        ackUpdate({ read: meta, device, upTo: upToSeq, floor: newFloor(meta, plan), countDelta: -victims.count, bytesDelta: -victims.bytes, senders: victims.senders, ...gap }),
      );
      this.remember(user, after);
      this.orphaned += victims.count;
      return { cursor: upToSeq, moved: true, deleted: victims.count, deletedBytes: victims.bytes };
    });
  }

  /** The seqs of the messages for `device` stored above its cursor up to `hi` and not released: what a skip to `hi` passes. */
  private async unacked(user: UserId, meta: MetaValue, device: DeviceId, hi: Seq): Promise<Seq[]> {
    const seqs: Seq[] = [];
    await this.t.queryRange(user, messageSk(meta.devices[device]!.cursor + 1), messageSk(hi), 1000, (items) => {
      for (const item of items) {
        const rec = seqRecord(item);
        if (!rec.tomb && (rec.toDevice === undefined || rec.toDevice === device) && !isReleased(meta, rec.seq, rec.toDevice)) seqs.push(rec.seq);
      }
      return true;
    });
    return seqs;
  }

  /**
   * The common ack, without a read: this node read the range the ack releases (no hole
   * left in it) and remembers what it found there, so it knows what the ack releases and
   * commits it in one UpdateItem conditioned on the part of the state it computed from
   * (meta-writes.ts ackUpdate: the device's own cursor and notice, the other devices'
   * lowest cursor up to the ack, the floor, the device set), which another device's ack
   * leaves alone unless it was the last one behind. When the ack brings every device to
   * the last seq, everything is released: the counters become 0 and the floor the last
   * seq (conditioned on `last` too). If the condition fails, DynamoDB returned the meta
   * item as it is; when nothing in the range was removed meanwhile (sameItems), the ack is
   * computed again from it and the remembered items, still without a read. Undefined when
   * this does not apply (the general path then reads).
   */
  private async ackFromSeen(user: UserId, device: DeviceId, upToSeq: Seq): Promise<AckOutcome | undefined> {
    for (let attempt = 0; attempt < FAST_ACK_ATTEMPTS; attempt++) {
      const seen = this.seen.get(user);
      const meta = seen?.meta;
      const resolved = seen?.resolved;
      if (!meta || !resolved) return undefined;
      const change = releaseFromSeen(meta, resolved, device, upToSeq);
      if (!change) return undefined;
      try {
        const after = await this.t.updateMeta(user, change.update);
        this.remember(user, after);
        this.orphaned += change.count;
        return { cursor: upToSeq, moved: true, deleted: change.count, deletedBytes: change.bytes };
      } catch (err) {
        if (!(err instanceof StaleRead)) throw err;
        this.t.capacity.retries++;
        // A read of this node remembered a newer state meanwhile: compute again from that.
        if (this.seen.get(user)?.meta !== meta) continue;
        // Still the same mailbox as this node read: compute again from the item as it is now.
        if (err.current && sameItems(meta, err.current, device)) {
          this.remember(user, err.current);
          continue;
        }
        this.seen.delete(user);
        return undefined;
      }
    }
    return undefined;
  }

  async registerDevice(user: UserId, device: DeviceId, start: DeviceStart, now: number, maxDevices: number): Promise<RegisterOutcome> {
    return this.optimistic(async () => {
      const stored = await this.t.getMeta(user);
      const meta = stored ?? emptyMeta();
      if (hasDevice(meta.devices, device)) {
        const d = meta.devices[device]!;
        return { device, cursor: d.cursor, registeredAt: d.registeredAt, created: false };
      }
      if (Object.keys(meta.devices).length >= maxDevices) {
        throw tooManyDevices(user, maxDevices);
      }
      const cursor = startCursor(meta.devices, start, meta.lastSeq);
      const value = { cursor, registeredAt: now };
      const devices = { ...meta.devices, [device]: value };
      if (!stored) {
        // Nothing stored yet, so nothing to release: create the meta item with the device.
        await this.t.createMeta(user, { ...meta, devices });
        return { device, cursor, registeredAt: now, created: true, deleted: 0, deletedBytes: 0 };
      }
      if (Object.keys(meta.devices).length > 0) {
        // A later device releases nothing (it can only lower the lowest cursor), so its
        // write depends only on the device being new and the count under the limit: not
        // conditioned on `ver`, so acks and the other devices' registrations on other
        // nodes do not make it read and try again (meta-writes.ts addDeviceUpdate).
        this.remember(user, await this.t.updateMeta(user, addDeviceUpdate(device, value, maxDevices)));
        return { device, cursor, registeredAt: now, created: true, deleted: 0, deletedBytes: 0 };
      }
      const plan = planAfterRegister(minCursor(meta.devices), minCursor(devices));
      const victims = await this.releaseWith(user, meta, plan, { addDevice: { device, value } });
      return { device, cursor, registeredAt: now, created: true, deleted: victims.count, deletedBytes: victims.bytes };
    });
  }

  /**
   * Two steps, so a stream of sends from other nodes cannot starve it: mark the device
   * as leaving (sends addressed to it are refused from then on), settle the seqs reserved
   * before the mark, then remove it (conditioned on `ver` only; `last` may move on).
   */
  async removeDevice(user: UserId, device: DeviceId): Promise<RemoveOutcome> {
    return this.optimistic(async () => {
      let meta = await this.t.getMeta(user);
      if (!meta || !hasDevice(meta.devices, device)) return { removed: false, deleted: 0, deletedBytes: 0 };
      if (!meta.leaving.includes(device)) meta = await this.t.updateMeta(user, stateUpdate({ expectedVer: meta.ver, markLeaving: device }));
      const oldMin = minCursor(meta.devices);
      const removedCursor = meta.devices[device]!.cursor;
      const devices = { ...meta.devices };
      delete devices[device];
      const plan = planAfterRemove(oldMin, minCursor(devices), device, removedCursor, meta.lastSeq);
      const victims = await this.releaseWith(user, meta, plan, { removeDevice: device });
      return { removed: true, deleted: victims.count, deletedBytes: victims.bytes };
    });
  }

  async listDevices(user: UserId): Promise<DeviceCursor[]> {
    await this.ready();
    const meta = await this.t.getMeta(user);
    return meta ? deviceList(meta.devices) : [];
  }

  async stats(user: UserId, now: number): Promise<MailboxStats> {
    await this.ready();
    const meta = await this.t.getMeta(user);
    if (!meta) return { user, epoch: '', lastSeq: 0, pending: 0, pendingBytes: 0, oldestAgeMs: null, devices: [] };
    let oldestAgeMs: number | null = null;
    if (meta.count > 0) {
      await this.t.queryRange(user, messageSk(meta.floor + 1), MAX_SK, 25, (items) => {
        for (const item of items) {
          if (seqRecord(item).tomb) continue;
          const m = decodeMessage(item);
          if (isReleased(meta, m.seq, m.toDevice)) continue;
          oldestAgeMs = Math.max(0, now - m.sentAt);
          return false;
        }
        return true;
      });
    }
    return { user, epoch: meta.epoch, lastSeq: meta.lastSeq, pending: meta.count, pendingBytes: meta.bytes, oldestAgeMs, devices: deviceList(meta.devices) };
  }

  async purge(user: UserId): Promise<PurgeOutcome> {
    return this.optimistic(async () => {
      const meta = await this.t.getMeta(user);
      if (!meta) return { deleted: 0, deletedBytes: 0 };
      const victims = await this.collectOrWait(user, meta, { all: { lo: meta.floor, hi: meta.lastSeq }, targeted: null });
      // Zeroing the counters is exact only if no send landed since the read: conditioned on last too.
      // Devices that had not acked what goes are told on their next read: their notices are in this same update.
      const setGaps = gapsAfterRemoval(meta.devices, victims.removed, 'purged');
      const after = await this.t.updateMeta(
        user,
        stateUpdate({ expectedVer: meta.ver, expectedLast: meta.lastSeq, floor: meta.lastSeq, zero: true, dropSenders: Object.keys(meta.senders), setGaps }),
      );
      this.remember(user, after);
      await this.dropReleased(user, victims.sks);
      return { deleted: victims.count, deletedBytes: victims.bytes };
    });
  }

  async exportPage(user: UserId, afterSeq: Seq, upTo: Seq, limit: number): Promise<ExportPage> {
    await this.ready();
    return exportPage(this.t, user, afterSeq, upTo, limit);
  }

  async restore(snapshot: MailboxSnapshot): Promise<RestoreOutcome> {
    await this.ready();
    this.seen.delete(snapshot.user);
    return restore(this.t, snapshot, this.ttlGraceSeconds);
  }

  async sweep(now: number, max: number): Promise<SweepOutcome> {
    await this.ready();
    return sweep(this.t, this.sweepState, now, max, { graceSeconds: this.ttlGraceSeconds, onLeftBehind: (count, err) => this.leftBehind(count, err) });
  }

  async users(opts: { after?: UserId; limit?: number } = {}): Promise<UserId[]> {
    await this.ready();
    const items = await this.t.queryIndex(USERS_GPK, undefined, opts.after, opts.limit ?? 1000);
    return items.map((i) => i.pk!.S!);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsClient) this.t.client.destroy();
  }
}

/** An ack that reaches the device's gap notice's `to` removes the notice in the same update. */
function gapCleared(meta: MetaValue, device: DeviceId, upToSeq: Seq): { gap?: null } {
  const gap = meta.devices[device]?.gap;
  return gap && !gapAfterAck(gap, upToSeq) ? { gap: null } : {};
}

/**
 * What an ack of `device` to `upToSeq` releases, computed from a meta item and the items
 * this node read in `resolved`, and its update; undefined when the range is not all
 * known (or the ack moves nothing).
 */
function releaseFromSeen(meta: MetaValue, resolved: Resolved, device: DeviceId, upToSeq: Seq): { update: MetaUpdate; count: number; bytes: number } | undefined {
  if (!hasDevice(meta.devices, device)) return undefined;
  const cursor = meta.devices[device]!.cursor;
  if (upToSeq > meta.lastSeq || upToSeq <= cursor) return undefined;
  // Seqs at or below the floor are released: known without a read (a sweep raises the
  // floor past the cursor of a device that had not seen what expired).
  const known = Math.max(cursor, meta.floor);
  if (known < resolved.lo || upToSeq > resolved.hi) return undefined;
  const drained = upToSeq === meta.lastSeq && Object.entries(meta.devices).every(([d, v]) => d === device || v.cursor >= upToSeq);
  if (drained) {
    return { update: ackUpdate({ read: meta, device, upTo: upToSeq, floor: upToSeq, zero: true, ...gapCleared(meta, device, upToSeq) }), count: meta.count, bytes: meta.bytes };
  }
  const oldMin = minCursor(meta.devices);
  const newMin = minCursor({ ...meta.devices, [device]: { ...meta.devices[device]!, cursor: upToSeq } });
  const plan = planAfterAck(oldMin, newMin, device, cursor, upToSeq);
  const ranges = [plan.all, plan.targeted].filter((r): r is NonNullable<typeof r> => r !== null && r.hi > r.lo);
  if (ranges.some((r) => Math.max(r.lo, meta.floor) < resolved.lo || r.hi > resolved.hi)) return undefined;
  let count = 0;
  let bytes = 0;
  const bySender = new Map<UserId, { count: number; bytes: number }>();
  for (const range of ranges) {
    const only = range === plan.targeted ? device : undefined;
    for (let seq = range.lo + 1; seq <= range.hi; seq++) {
      const rec = resolved.items.get(seq);
      if (!rec || rec.tomb || (only !== undefined && rec.toDevice !== only) || isReleased(meta, seq, rec.toDevice)) continue;
      count++;
      bytes += rec.bytes;
      addSender(bySender, rec.from, rec.bytes);
    }
  }
  const update = ackUpdate({
    read: meta,
    device,
    upTo: upToSeq,
    floor: newFloor(meta, plan),
    countDelta: -count,
    bytesDelta: -bytes,
    senders: senderDecrements(meta, bySender),
    ...gapCleared(meta, device, upToSeq),
  });
  return { update, count, bytes };
}

/** The floor only rises over a contiguous released range, so "seq <= floor" always means released. */
function newFloor(meta: MetaValue, plan: DeletePlan): Seq {
  return plan.all && plan.all.lo <= meta.floor ? Math.max(meta.floor, plan.all.hi) : meta.floor;
}

function isLoopback(endpoint: string | undefined): boolean {
  if (endpoint === undefined) return false;
  const host = new URL(endpoint).hostname;
  return host === 'localhost' || host.startsWith('127.') || host === '[::1]';
}

/** The per-request deadline: a few seconds for the service, more for DynamoDB Local on a loopback address. */
function requestTimeout(cfg: { endpoint?: string | undefined; requestTimeoutMs?: number | undefined }): number {
  return cfg.requestTimeoutMs ?? (isLoopback(cfg.endpoint) ? 30_000 : 5_000);
}

/**
 * SDK client settings for a config: our own retry loop replaces the SDK's, and the HTTP
 * handler gives up on a connection or a silent socket, so a stalled store fails fast.
 */
export function clientConfig(cfg: Pick<DynamoDbConfig, 'region' | 'endpoint'> & Partial<Pick<DynamoDbConfig, 'requestTimeoutMs' | 'connectTimeoutMs'>>): DynamoDBClientConfig {
  const conf: DynamoDBClientConfig = {
    region: cfg.region,
    maxAttempts: 1,
    requestHandler: { connectionTimeout: cfg.connectTimeoutMs ?? 2_000, requestTimeout: requestTimeout(cfg), throwOnRequestTimeout: true },
  };
  if (cfg.endpoint !== undefined) {
    conf.endpoint = cfg.endpoint;
    // DynamoDB Local accepts any credentials; spare local users from inventing some.
    if (isLoopback(cfg.endpoint) && !process.env.AWS_ACCESS_KEY_ID && !process.env.AWS_PROFILE) {
      conf.credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
    }
  }
  return conf;
}

export type DynamoDbConfigInput = z.input<typeof DynamoDbConfigSchema>;

/** Open the engine on an existing table (see `pobox dynamodb create-table`). */
export async function openDynamoDbStore(
  input: DynamoDbConfigInput | DynamoDbConfig,
  extra: { client?: DynamoDBClient; retry?: Partial<RetryPolicy>; holeLeaseMs?: number; afterReserve?: DynamoDbStoreOptions['afterReserve'] } = {},
): Promise<DynamoDbStore> {
  const cfg = parseConfig(DynamoDbConfigSchema, input, 'dynamodb config');
  const client = extra.client ?? new DynamoDBClient(clientConfig(cfg));
  return new DynamoDbStore({
    table: cfg.table,
    client,
    ownsClient: extra.client === undefined,
    ttlGraceSeconds: cfg.ttlGraceSeconds,
    retry: { maxAttempts: cfg.maxAttempts, requestTimeoutMs: requestTimeout(cfg), faultBudgetMs: cfg.faultBudgetMs ?? 2 * requestTimeout(cfg), ...extra.retry },
    ...(extra.holeLeaseMs !== undefined ? { holeLeaseMs: extra.holeLeaseMs } : {}),
    ...(extra.afterReserve ? { afterReserve: extra.afterReserve } : {}),
  });
}
