/**
 * The DynamoDB engine: many stateless gateway nodes share one table (layout in keys.ts,
 * docs/dynamodb.md). Loaded only when chosen; the AWS SDK is an optional dependency.
 *
 * Consistency: every mailbox read is strongly consistent. Every change to a user's
 * meta item is a conditional update of only the attributes it changes, conditioned on
 * what it depends on (meta-writes.ts): sends on the last seq, device-state changes on
 * the device-state version. Concurrent nodes serialise per user by optimistic
 * concurrency, never by a lock, and an ack never invalidates a send. Appends commit
 * meta + messages + dedupe in one transaction (append.ts). Acks, device removal and purge commit the meta
 * item first and then delete messages in batches (one write unit each instead of a
 * transaction's two); messages a crash leaves behind are "released" (released.ts):
 * invisible, never counted twice, deleted by the sweeper or native TTL. Reads check
 * gaps so a transaction still being applied is never skipped (read.ts).
 */
import { DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import type { z } from 'zod';
import { DynamoDbConfigSchema, parseConfig, type DynamoDbConfig } from '../../core/config.js';
import { PoboxError, deviceNotRegistered, tooManyDevices, ackBeyondLastSeq, closedError } from '../../core/errors.js';
import type { DeviceId, Seq, UserId } from '../../core/ids.js';
import type { DeviceCursor, DeviceStart, MailboxStats, ReadPage } from '../../core/types.js';
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
import { appendForUser, emptyMeta, type Entry } from './append.js';
import { decodeMessage, MAX_BODY_BYTES, type Item, type MetaValue } from './codec.js';
import { messageSk, MESSAGE_PREFIX, USERS_GPK } from './keys.js';
import { UserLanes } from './lanes.js';
import { senderDecrements, stateUpdate, type SenderDecrement } from './meta-writes.js';
import { StaleRead, TableClient, type CapacityCounters } from './queries.js';
import { isReleased } from './released.js';
import { contentionPause, DEFAULT_RETRY, withinBudget, type RetryPolicy } from './retry.js';
import { sweep } from './sweep.js';
import { readOnce } from './read.js';

export type { CapacityCounters } from './queries.js';

export interface DynamoDbStoreOptions {
  table: string;
  client: DynamoDBClient;
  /** Close the client on close() (true when the store created it). */
  ownsClient?: boolean;
  sweepShards?: number;
  ttlGraceSeconds?: number;
  retry?: Partial<RetryPolicy>;
  /** Most items a read examines (other devices' or expired) before returning a short page. */
  scanBudget?: number;
  /** Users appended to concurrently within one batch. */
  userConcurrency?: number;
}

const MAX_SK = MESSAGE_PREFIX + '9'.repeat(16);

export class DynamoDbStore implements MailboxStore {
  readonly engine = 'dynamodb';
  readonly capabilities: StoreCapabilities = { embedded: false, maxBodyBytes: MAX_BODY_BYTES };

  private readonly t: TableClient;
  private readonly sweepShards: number;
  private readonly ttlGraceSeconds: number;
  private readonly scanBudget: number;
  private readonly userConcurrency: number;
  private readonly ownsClient: boolean;
  private closed = false;
  /** Appends of this instance to one user go one after another, coalesced (lanes.ts). */
  private readonly lanes: UserLanes;
  /** Messages a crash or an outage left released but not yet deleted (they wait for the sweeper). */
  private orphaned = 0;
  private readonly backgroundListeners = new Set<(err: unknown) => void>();

  constructor(opts: DynamoDbStoreOptions) {
    this.t = new TableClient(opts.client, opts.table, { ...DEFAULT_RETRY, ...opts.retry });
    this.sweepShards = opts.sweepShards ?? 16;
    this.ttlGraceSeconds = opts.ttlGraceSeconds ?? 86_400;
    this.scanBudget = opts.scanBudget ?? 1000;
    this.userConcurrency = opts.userConcurrency ?? 16;
    this.ownsClient = opts.ownsClient ?? false;
    const settings = { sweepShards: this.sweepShards, ttlGraceSeconds: this.ttlGraceSeconds };
    this.lanes = new UserLanes((user, entries, limits, out) => appendForUser(this.t, settings, user, entries, limits, out));
  }

  counters(): StoreCounters {
    return { ...this.t.counts };
  }

  /** Read and write capacity units DynamoDB reported for this store's requests (not part of the contract). */
  capacity(): CapacityCounters & { orphaned: number } {
    return { ...this.t.capacity, orphaned: this.orphaned };
  }

  /** Deletes that failed and were left for the sweeper are reported here (logged and counted by the server). */
  onBackgroundFailure(listener: (err: unknown) => void): void {
    this.backgroundListeners.add(listener);
  }

  private ensureOpen(): void {
    if (this.closed) throw closedError('store');
  }

  async append(items: readonly AppendItem[], limits: AppendLimits): Promise<AppendOutcome[]> {
    this.ensureOpen();
    const out: AppendOutcome[] = new Array(items.length);
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
    this.ensureOpen();
    const startedAt = Date.now();
    for (let attempt = 0; ; attempt++) {
      const page = await readOnce(this.t, req, this.scanBudget);
      if (page) return page;
      // A gap was a write still being applied: read again, it is visible now.
      if (!withinBudget(startedAt, this.t.retry)) throw new PoboxError('UNAVAILABLE', `mailbox of ${req.user} kept changing during a read; try again`);
      await contentionPause(attempt, this.t.retry);
    }
  }

  /** The messages a plan lets us delete, read before the meta item commits. */
  private async collect(user: UserId, meta: MetaValue, plan: DeletePlan): Promise<Victims> {
    const sks: string[] = [];
    let count = 0;
    let bytes = 0;
    const bySender = new Map<UserId, { count: number; bytes: number }>();
    const take = (item: Item, device?: DeviceId): void => {
      const m = decodeMessage(item);
      if (device !== undefined && m.toDevice !== device) return;
      sks.push(messageSk(m.seq));
      if (isReleased(meta, m.seq, m.toDevice)) return; // already counted as deleted
      count++;
      bytes += m.bytes;
      const b = bySender.get(m.from) ?? { count: 0, bytes: 0 };
      b.count++;
      b.bytes += m.bytes;
      bySender.set(m.from, b);
    };
    if (plan.all) {
      await this.t.queryRange(user, messageSk(plan.all.lo + 1), messageSk(plan.all.hi), 1000, (items) => {
        items.forEach((i) => take(i));
        return true;
      });
    }
    if (plan.targeted) {
      const { device } = plan.targeted;
      await this.t.queryRange(user, messageSk(plan.targeted.lo + 1), messageSk(plan.targeted.hi), 1000, (items) => {
        items.forEach((i) => take(i, device));
        return true;
      });
    }
    return { sks, count, bytes, senders: senderDecrements(meta, bySender) };
  }

  /** Delete released messages; if DynamoDB refuses, they stay released for the sweeper. */
  private async dropReleased(user: UserId, sks: string[]): Promise<void> {
    try {
      await this.t.deleteMany(user, sks);
    } catch (err) {
      this.orphaned += sks.length;
      for (const listener of this.backgroundListeners) listener(err);
    }
  }

  /** Retry `fn` when a conditional meta write lost a race to another node (for the contention budget). */
  private async optimistic<T>(fn: () => Promise<T>): Promise<T> {
    this.ensureOpen();
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

  async ack(user: UserId, device: DeviceId, upToSeq: Seq): Promise<AckOutcome> {
    return this.optimistic(async () => {
      const meta = await this.t.getMeta(user);
      if (!meta || !hasDevice(meta.devices, device)) throw deviceNotRegistered(user, device);
      if (upToSeq > meta.lastSeq) throw ackBeyondLastSeq(upToSeq, meta.lastSeq);
      const dev = meta.devices[device]!;
      if (upToSeq <= dev.cursor) return { cursor: dev.cursor, moved: false, deleted: 0, deletedBytes: 0 };
      const oldMin = minCursor(meta.devices);
      const devices = { ...meta.devices, [device]: { ...dev, cursor: upToSeq } };
      const newMin = minCursor(devices);
      const plan = planAfterAck(oldMin, newMin, device, dev.cursor, upToSeq);
      const victims = await this.collect(user, meta, plan);
      // Conditioned on the device state we read (ver), not on last: sends go on meanwhile.
      await this.t.updateMeta(
        user,
        stateUpdate({
          expectedVer: meta.ver,
          setCursor: { device, cursor: upToSeq },
          floor: newFloor(meta, plan),
          countDelta: -victims.count,
          bytesDelta: -victims.bytes,
          senders: victims.senders,
        }),
      );
      await this.dropReleased(user, victims.sks);
      return { cursor: upToSeq, moved: true, deleted: victims.count, deletedBytes: victims.bytes };
    });
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
        // Nothing stored yet, so nothing to delete: create the meta item with the device.
        await this.t.createMeta(user, { ...meta, devices });
        return { device, cursor, registeredAt: now, created: true, deleted: 0, deletedBytes: 0 };
      }
      const plan = planAfterRegister(minCursor(meta.devices), minCursor(devices));
      const victims = await this.collect(user, meta, plan);
      await this.t.updateMeta(
        user,
        stateUpdate({
          expectedVer: meta.ver,
          addDevice: { device, value },
          floor: newFloor(meta, plan),
          countDelta: -victims.count,
          bytesDelta: -victims.bytes,
          senders: victims.senders,
        }),
      );
      await this.dropReleased(user, victims.sks);
      return { device, cursor, registeredAt: now, created: true, deleted: victims.count, deletedBytes: victims.bytes };
    });
  }

  async removeDevice(user: UserId, device: DeviceId): Promise<RemoveOutcome> {
    return this.optimistic(async () => {
      const meta = await this.t.getMeta(user);
      if (!meta || !hasDevice(meta.devices, device)) return { removed: false, deleted: 0, deletedBytes: 0 };
      const oldMin = minCursor(meta.devices);
      const removedCursor = meta.devices[device]!.cursor;
      const devices = { ...meta.devices };
      delete devices[device];
      const plan = planAfterRemove(oldMin, minCursor(devices), device, removedCursor, meta.lastSeq);
      const victims = await this.collect(user, meta, plan);
      // Its messages are released up to the last seq we read: a send since then must not slip past.
      await this.t.updateMeta(
        user,
        stateUpdate({
          expectedVer: meta.ver,
          expectedLast: meta.lastSeq,
          removeDevice: device,
          floor: newFloor(meta, plan),
          countDelta: -victims.count,
          bytesDelta: -victims.bytes,
          senders: victims.senders,
        }),
      );
      await this.dropReleased(user, victims.sks);
      return { removed: true, deleted: victims.count, deletedBytes: victims.bytes };
    });
  }

  async listDevices(user: UserId): Promise<DeviceCursor[]> {
    this.ensureOpen();
    const meta = await this.t.getMeta(user);
    return meta ? deviceList(meta.devices) : [];
  }

  async stats(user: UserId, now: number): Promise<MailboxStats> {
    this.ensureOpen();
    const meta = await this.t.getMeta(user);
    if (!meta) return { user, epoch: '', lastSeq: 0, pending: 0, pendingBytes: 0, oldestAgeMs: null, devices: [] };
    let oldestAgeMs: number | null = null;
    if (meta.count > 0) {
      await this.t.queryRange(user, messageSk(meta.floor + 1), MAX_SK, 1, (items) => {
        const first = items[0];
        if (first) oldestAgeMs = Math.max(0, now - decodeMessage(first).sentAt);
        return first === undefined;
      });
    }
    return { user, epoch: meta.epoch, lastSeq: meta.lastSeq, pending: meta.count, pendingBytes: meta.bytes, oldestAgeMs, devices: deviceList(meta.devices) };
  }

  async purge(user: UserId): Promise<PurgeOutcome> {
    return this.optimistic(async () => {
      const meta = await this.t.getMeta(user);
      if (!meta) return { deleted: 0, deletedBytes: 0 };
      const victims = await this.collect(user, meta, { all: { lo: 0, hi: meta.lastSeq }, targeted: null });
      // Zeroing the counters is exact only if no send landed since the read: conditioned on last too.
      await this.t.updateMeta(user, stateUpdate({ expectedVer: meta.ver, expectedLast: meta.lastSeq, floor: meta.lastSeq, zero: true, dropSenders: Object.keys(meta.senders) }));
      await this.dropReleased(user, victims.sks);
      return { deleted: victims.count, deletedBytes: victims.bytes };
    });
  }

  async sweep(now: number, max: number): Promise<SweepOutcome> {
    this.ensureOpen();
    return sweep(this.t, this.sweepShards, now, max);
  }

  async users(opts: { after?: UserId; limit?: number } = {}): Promise<UserId[]> {
    this.ensureOpen();
    const items = await this.t.queryIndex(USERS_GPK, undefined, opts.after, opts.limit ?? 1000);
    return items.map((i) => i.pk!.S!);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsClient) this.t.client.destroy();
  }
}

interface Victims {
  sks: string[];
  count: number;
  bytes: number;
  senders: SenderDecrement[];
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
  extra: { client?: DynamoDBClient; retry?: Partial<RetryPolicy> } = {},
): Promise<DynamoDbStore> {
  const cfg = parseConfig(DynamoDbConfigSchema, input, 'dynamodb config');
  const client = extra.client ?? new DynamoDBClient(clientConfig(cfg));
  return new DynamoDbStore({
    table: cfg.table,
    client,
    ownsClient: extra.client === undefined,
    sweepShards: cfg.sweepShards,
    ttlGraceSeconds: cfg.ttlGraceSeconds,
    retry: { maxAttempts: cfg.maxAttempts, requestTimeoutMs: requestTimeout(cfg), faultBudgetMs: cfg.faultBudgetMs ?? 2 * requestTimeout(cfg), ...extra.retry },
  });
}
