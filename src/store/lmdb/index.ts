/**
 * The embedded engine: one LMDB environment on disk, zero set-up.
 *
 * Durability: the environment is opened with `overlappingSync: false`, so a write
 * transaction's promise resolves only after LMDB's commit has fsync'd the data. Every
 * mutation runs inside `root.transaction(cb)`; lmdb-js queues callbacks from the same
 * event turn into one write transaction, and the post office hands us whole batches,
 * so concurrent sends share one commit and one fsync (group commit).
 *
 * Reads run outside write transactions on lmdb-js's current read snapshot; they never
 * touch another user's keys (see keys.ts for the layout: one B-tree, keyed by user first).
 */
import { mkdirSync } from 'node:fs';
import { ensureDurableDir, fsyncDir } from '../../core/durable-files.js';
import { open, type Database, type RootDatabase } from 'lmdb';
import { PoboxError, deviceNotRegistered, tooManyDevices, ackBeyondLastSeq, closedError } from '../../core/errors.js';
import type { DeviceId, Seq, UserId } from '../../core/ids.js';
import type { DeviceCursor, DeviceStart, MailboxStats, ReadPage, StoredMessage } from '../../core/types.js';
import type {
  AckOutcome,
  AppendItem,
  AppendLimits,
  AppendOutcome,
  MailboxStore,
  PurgeOutcome,
  ReadRequest,
  RegisterOutcome,
  RemoveOutcome,
  StoreCapabilities,
  StoreCounters,
  SweepOutcome,
} from '../contract.js';
import { deviceList, hasDevice, minCursor, planAfterAck, planAfterRegister, planAfterRemove, startCursor, type DeletePlan } from '../rules.js';
import { newEpoch } from '../epoch.js';
import {
  dedupeKey,
  expiryKey,
  messageKey,
  messageRange,
  metaKey,
  pastUserKey,
  seqOf,
  type DedupeValue,
  type ExpiryKey,
  type MailboxKey,
  type MessageValue,
  type MetaValue,
} from './keys.js';

export interface LmdbStoreOptions {
  /** Directory holding the environment; created if missing. */
  path: string;
  /** Most entries a read scans past (targeted at other devices, expired) before returning a short page. */
  scanBudget?: number;
}

function emptyMeta(): MetaValue {
  return { epoch: newEpoch(), lastSeq: 0, count: 0, bytes: 0, devices: {} };
}

export class LmdbStore implements MailboxStore {
  readonly engine = 'lmdb';
  readonly capabilities: StoreCapabilities = { groupCommit: true, embedded: true, nativeExpiry: false };

  private readonly root: RootDatabase;
  /** Meta, messages and dedupe entries of every user, under the user's prefix (keys.ts). */
  private readonly mailboxes: Database<MetaValue | MessageValue | DedupeValue, MailboxKey>;
  private readonly expiry: Database<string, ExpiryKey>;
  private readonly scanBudget: number;
  private readonly count: StoreCounters = { keysRead: 0, keysWritten: 0, keysDeleted: 0 };
  private closed = false;

  constructor(opts: LmdbStoreOptions) {
    mkdirSync(opts.path, { recursive: true });
    this.root = open({
      path: opts.path,
      // Resolve write promises only once the commit is fsync'd: what we acknowledge is on disk.
      overlappingSync: false,
      noSync: false,
      compression: false,
      cache: false,
      maxDbs: 8,
    });
    this.mailboxes = this.root.openDB<MetaValue | MessageValue | DedupeValue, MailboxKey>('mailboxes', { cache: false });
    this.expiry = this.root.openDB<string, ExpiryKey>('expiry', { cache: false });
    this.scanBudget = opts.scanBudget ?? 1000;
  }

  counters(): StoreCounters {
    return { ...this.count };
  }

  private ensureOpen(): void {
    if (this.closed) throw closedError('store');
  }

  private getMeta(user: UserId): MetaValue | undefined {
    this.count.keysRead++;
    return this.mailboxes.get(metaKey(user)) as MetaValue | undefined;
  }

  private putMeta(user: UserId, meta: MetaValue): void {
    this.count.keysWritten++;
    this.mailboxes.putSync(metaKey(user), meta);
  }

  /**
   * Run `fn` inside one durable write transaction; resolves after fsync. It runs as a
   * child transaction of lmdb-js's batched commit: callbacks queued in the same event
   * turn still share one commit (group commit), but if `fn` throws, its own writes are
   * rolled back instead of being committed half-done next to the others.
   */
  private async write<T>(fn: () => T): Promise<T> {
    this.ensureOpen();
    try {
      return (await this.root.childTransaction(fn)) as T;
    } catch (err) {
      if (err instanceof PoboxError) throw err;
      throw new PoboxError('UNAVAILABLE', `lmdb write failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async append(items: readonly AppendItem[], limits: AppendLimits): Promise<AppendOutcome[]> {
    if (items.length === 0) return [];
    return this.write(() => {
      const metas = new Map<UserId, MetaValue>();
      // Only mailboxes that really stored something are written back: a refused send
      // to a user we have never seen must not create an (empty) mailbox.
      const dirty = new Set<UserId>();
      const out: AppendOutcome[] = [];
      for (const item of items) {
        let meta = metas.get(item.to) ?? this.getMeta(item.to);
        if (!meta) meta = emptyMeta();
        metas.set(item.to, meta);

        // Dedupe first: a resend of a stored message answers with its seq even if its
        // target device has since been removed.
        this.count.keysRead++;
        const seen = this.mailboxes.get(dedupeKey(item.to, item.id)) as DedupeValue | undefined;
        if (seen && seen.expiresAt > item.sentAt) {
          out.push({ ok: true, seq: seen.seq, duplicate: true, epoch: meta.epoch });
          continue;
        }
        if (item.toDevice !== undefined && !hasDevice(meta.devices, item.toDevice)) {
          out.push({ ok: false, error: deviceNotRegistered(item.to, item.toDevice, 'toDevice') });
          continue;
        }
        if (meta.count + 1 > limits.maxMailboxMessages || meta.bytes + item.bytes > limits.maxMailboxBytes) {
          out.push({ ok: false, error: new PoboxError('MAILBOX_FULL', `mailbox of ${item.to} is full`) });
          continue;
        }
        const seq = meta.lastSeq + 1;
        meta.lastSeq = seq;
        meta.count += 1;
        meta.bytes += item.bytes;
        const value: MessageValue = { id: item.id, from: item.from, body: item.body, bytes: item.bytes, sentAt: item.sentAt, expiresAt: item.expiresAt };
        if (item.toDevice !== undefined) value.toDevice = item.toDevice;
        if (item.receipt) value.receipt = true;
        this.mailboxes.putSync(messageKey(item.to, seq), value);
        this.mailboxes.putSync(dedupeKey(item.to, item.id), { seq, expiresAt: item.expiresAt });
        this.expiry.putSync(expiryKey(item.expiresAt, item.to, seq), item.id);
        this.count.keysWritten += 3;
        dirty.add(item.to);
        out.push({ ok: true, seq, duplicate: false, epoch: meta.epoch });
      }
      for (const user of dirty) this.putMeta(user, metas.get(user)!);
      return out;
    });
  }

  async read(req: ReadRequest): Promise<ReadPage> {
    this.ensureOpen();
    const meta = this.getMeta(req.user);
    if (!meta || !hasDevice(meta.devices, req.device)) {
      throw deviceNotRegistered(req.user, req.device);
    }
    const cursor = meta.devices[req.device]!.cursor;
    const after = Math.max(req.afterSeq, cursor);
    const messages: StoredMessage[] = [];
    let nextAfter = after;
    let scanned = 0;
    let more = false;
    for (const { key, value: v } of this.mailboxes.getRange(messageRange(req.user, after))) {
      this.count.keysRead++;
      if (messages.length >= req.limit || scanned >= this.scanBudget) {
        more = true; // an entry exists past what we return
        break;
      }
      scanned++;
      const value = v as MessageValue;
      const seq = seqOf(key);
      nextAfter = seq;
      if (value.expiresAt <= req.now) continue;
      if (value.toDevice !== undefined && value.toDevice !== req.device) continue;
      messages.push(toStored(req.user, seq, value));
    }
    return { epoch: meta.epoch, messages, nextAfter, more, lastSeq: meta.lastSeq };
  }

  /** Delete what a plan allows; returns count and bytes freed. Call inside a write. */
  private applyDeletes(user: UserId, plan: DeletePlan): { deleted: number; bytes: number } {
    // Collect first, delete after: removing entries under a live range cursor is not
    // something lmdb-js promises to iterate correctly.
    const doomed: Array<{ seq: Seq; bytes: number }> = [];
    if (plan.all) {
      for (const { key, value } of this.mailboxes.getRange(messageRange(user, plan.all.lo, plan.all.hi))) {
        this.count.keysRead++;
        doomed.push({ seq: seqOf(key), bytes: (value as MessageValue).bytes });
      }
    }
    if (plan.targeted) {
      const { device } = plan.targeted;
      for (const { key, value: v } of this.mailboxes.getRange(messageRange(user, plan.targeted.lo, plan.targeted.hi))) {
        this.count.keysRead++;
        const value = v as MessageValue;
        if (value.toDevice === device) doomed.push({ seq: seqOf(key), bytes: value.bytes });
      }
    }
    let deleted = 0;
    let bytes = 0;
    for (const d of doomed) {
      if (!this.mailboxes.removeSync(messageKey(user, d.seq))) continue;
      this.count.keysDeleted++;
      deleted++;
      bytes += d.bytes;
    }
    return { deleted, bytes };
  }

  async ack(user: UserId, device: DeviceId, upToSeq: Seq): Promise<AckOutcome> {
    return this.write(() => {
      const meta = this.getMeta(user);
      if (!meta || !hasDevice(meta.devices, device)) {
        throw deviceNotRegistered(user, device);
      }
      if (upToSeq > meta.lastSeq) {
        throw ackBeyondLastSeq(upToSeq, meta.lastSeq);
      }
      const dev = meta.devices[device]!;
      if (upToSeq <= dev.cursor) return { cursor: dev.cursor, moved: false, deleted: 0, deletedBytes: 0 };
      const oldMin = minCursor(meta.devices);
      const oldCursor = dev.cursor;
      dev.cursor = upToSeq;
      const newMin = minCursor(meta.devices);
      const { deleted, bytes } = this.applyDeletes(user, planAfterAck(oldMin, newMin, device, oldCursor, upToSeq));
      meta.count -= deleted;
      meta.bytes -= bytes;
      this.putMeta(user, meta);
      return { cursor: upToSeq, moved: true, deleted, deletedBytes: bytes };
    });
  }

  async registerDevice(user: UserId, device: DeviceId, start: DeviceStart, now: number, maxDevices: number): Promise<RegisterOutcome> {
    return this.write(() => {
      const meta = this.getMeta(user) ?? emptyMeta();
      const existing = meta.devices[device];
      if (existing && hasDevice(meta.devices, device)) {
        return { device, cursor: existing.cursor, registeredAt: existing.registeredAt, created: false };
      }
      if (Object.keys(meta.devices).length >= maxDevices) {
        throw tooManyDevices(user, maxDevices);
      }
      const oldMin = minCursor(meta.devices);
      const cursor = startCursor(meta.devices, start, meta.lastSeq);
      meta.devices[device] = { cursor, registeredAt: now };
      const { deleted, bytes } = this.applyDeletes(user, planAfterRegister(oldMin, minCursor(meta.devices)));
      meta.count -= deleted;
      meta.bytes -= bytes;
      this.putMeta(user, meta);
      return { device, cursor, registeredAt: now, created: true, deleted, deletedBytes: bytes };
    });
  }

  async removeDevice(user: UserId, device: DeviceId): Promise<RemoveOutcome> {
    return this.write(() => {
      const meta = this.getMeta(user);
      if (!meta || !hasDevice(meta.devices, device)) return { removed: false, deleted: 0, deletedBytes: 0 };
      const oldMin = minCursor(meta.devices);
      const removedCursor = meta.devices[device]!.cursor;
      delete meta.devices[device];
      const newMin = minCursor(meta.devices);
      const { deleted, bytes } = this.applyDeletes(user, planAfterRemove(oldMin, newMin, device, removedCursor, meta.lastSeq));
      meta.count -= deleted;
      meta.bytes -= bytes;
      this.putMeta(user, meta);
      return { removed: true, deleted, deletedBytes: bytes };
    });
  }

  async listDevices(user: UserId): Promise<DeviceCursor[]> {
    this.ensureOpen();
    const meta = this.getMeta(user);
    return meta ? deviceList(meta.devices) : [];
  }

  async stats(user: UserId, now: number): Promise<MailboxStats> {
    this.ensureOpen();
    const meta = this.getMeta(user);
    if (!meta) return { user, epoch: '', lastSeq: 0, pending: 0, pendingBytes: 0, oldestAgeMs: null, devices: [] };
    let oldestAgeMs: number | null = null;
    for (const { value } of this.mailboxes.getRange({ ...messageRange(user, 0), limit: 1 })) {
      this.count.keysRead++;
      oldestAgeMs = Math.max(0, now - (value as MessageValue).sentAt);
    }
    return {
      user,
      epoch: meta.epoch,
      lastSeq: meta.lastSeq,
      pending: meta.count,
      pendingBytes: meta.bytes,
      oldestAgeMs,
      devices: deviceList(meta.devices),
    };
  }

  async purge(user: UserId): Promise<PurgeOutcome> {
    return this.write(() => {
      const meta = this.getMeta(user);
      if (!meta) return { deleted: 0, deletedBytes: 0 };
      const { deleted, bytes } = this.applyDeletes(user, { all: { lo: 0, hi: meta.lastSeq }, targeted: null });
      meta.count = 0;
      meta.bytes = 0;
      this.putMeta(user, meta);
      return { deleted, deletedBytes: bytes };
    });
  }

  async sweep(now: number, max: number): Promise<SweepOutcome> {
    this.ensureOpen();
    const due: Array<{ key: ExpiryKey; id: string }> = [];
    for (const { key, value } of this.expiry.getRange({ start: [0], end: [now + 1], limit: max + 1 })) {
      this.count.keysRead++;
      due.push({ key, id: value });
    }
    const more = due.length > max;
    if (more) due.pop();
    if (due.length === 0) return { expired: 0, expiredBytes: 0, cleaned: 0, more: false };
    return this.write(() => {
      let expired = 0;
      let expiredBytes = 0;
      let cleaned = 0;
      const metas = new Map<UserId, MetaValue | undefined>();
      for (const { key, id } of due) {
        const [expiresAt, user, seq] = key;
        if (!metas.has(user)) metas.set(user, this.getMeta(user));
        const meta = metas.get(user);
        this.count.keysRead++;
        const msg = this.mailboxes.get(messageKey(user, seq)) as MessageValue | undefined;
        if (msg && msg.expiresAt === expiresAt) {
          this.mailboxes.removeSync(messageKey(user, seq));
          this.count.keysDeleted++;
          expired++;
          expiredBytes += msg.bytes;
          if (meta) {
            meta.count -= 1;
            meta.bytes -= msg.bytes;
          }
        }
        this.count.keysRead++;
        const d = this.mailboxes.get(dedupeKey(user, id)) as DedupeValue | undefined;
        if (d && d.seq === seq) {
          this.mailboxes.removeSync(dedupeKey(user, id));
          this.count.keysDeleted++;
          cleaned++;
        }
        this.expiry.removeSync(expiryKey(expiresAt, user, seq));
        this.count.keysDeleted++;
        cleaned++;
      }
      for (const [user, meta] of metas) if (meta) this.putMeta(user, meta);
      return { expired, expiredBytes, cleaned, more };
    });
  }

  async users(opts: { after?: UserId; limit?: number } = {}): Promise<UserId[]> {
    this.ensureOpen();
    const out: UserId[] = [];
    const limit = opts.limit ?? 1000;
    // Hop from user to user: one seek per user, never a walk through their messages.
    let start: MailboxKey | undefined = opts.after === undefined ? undefined : pastUserKey(opts.after);
    while (out.length < limit) {
      let next: UserId | undefined;
      for (const key of this.mailboxes.getKeys(start === undefined ? { limit: 1 } : { start, limit: 1 })) next = key[0];
      this.count.keysRead++;
      if (next === undefined) break;
      out.push(next);
      start = pastUserKey(next);
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.root.flushed;
    await this.root.close();
  }
}

function toStored(user: UserId, seq: Seq, v: MessageValue): StoredMessage {
  const m: StoredMessage = { seq, id: v.id, from: v.from, to: user, body: v.body, bytes: v.bytes, sentAt: v.sentAt, expiresAt: v.expiresAt };
  if (v.toDevice !== undefined) m.toDevice = v.toDevice;
  if (v.receipt) m.receipt = true;
  return m;
}

export async function openLmdbStore(opts: LmdbStoreOptions): Promise<LmdbStore> {
  try {
    // The data dir and lmdb's own files (data.mdb, lock.mdb) are created here: their names
    // must survive a power loss as much as the commits inside them (src/core/durable-files.ts).
    ensureDurableDir(opts.path);
    const store = new LmdbStore(opts);
    fsyncDir(opts.path);
    return store;
  } catch (err) {
    // A path that is a file, unwritable, or an environment another program holds.
    throw new PoboxError('UNAVAILABLE', `cannot open the lmdb store at ${opts.path}: ${(err as Error).message}`, { cause: err, field: 'path' });
  }
}
