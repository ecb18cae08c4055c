/**
 * A MailboxStore whose engine runs in a worker thread (`store.worker` in the store config,
 * `--store-worker` on `pobox serve`), so the engine's CPU (lmdb: the WAL decisions, the
 * resident index, lmdb reads, the apply's puts; DynamoDB: the AWS SDK's per-request work)
 * runs on the second core beside the event loop that serves the sockets.
 *
 * Every call is forwarded as one postMessage and answered by one (protocol.ts); the engine
 * inside is the unchanged engine, so its semantics (durability, order, dedupe, quotas) are
 * exactly its own: a call resolves here only after it resolved there. What the contract
 * asks synchronously answers from state the worker sends along: `engine`, `capabilities`
 * and whether there is a `capacity()` when it opened; counters and capacity with every
 * answer and once a second (background work moves them between calls).
 *
 * Errors keep their meaning: a PoboxError comes back as a PoboxError with the same code,
 * message and field; anything else as an Error with its name and message.
 *
 * A worker that dies unexpectedly (an uncaught exception in the engine, out of memory)
 * takes the engine's in-memory state with it, and this process cannot tell what the dead
 * thread left half done (the lmdb environment it held open, its log's file descriptors).
 * So the store stops for good, the way a failed engine does today: every pending and later
 * call is answered UNAVAILABLE (so write health and /readyz report it), and the death is
 * reported once to the background failure listeners, marked so `isStoreWorkerDeath` tells
 * it apart. `pobox serve` is crash-only and exits on it (src/cli/commands/serve.ts): a clean
 * process replays the engine from disk, which loses nothing acknowledged (nothing is
 * acknowledged before the engine in the worker resolved it durable).
 */
import { Worker } from 'node:worker_threads';
import type { z } from 'zod';
import type { StoreConfigSchema } from '../../core/config.js';
import { closedError, PoboxError } from '../../core/errors.js';
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
  StoreCapacity,
  StoreCounters,
  SweepOutcome,
} from '../contract.js';
import type { LmdbStoreOptions, WalTuning } from '../lmdb/index.js';
import { fromWire, K_BACKGROUND, K_ERR, K_OK, K_READY, K_WAL, outcomesFromWire, readState, type Answer, type ReadyInfo, type WalEvent, type WireError } from './protocol.js';

/**
 * What the worker opens: a store config as `openStore` takes it, or the embedded engine
 * with its own tuning (tests and the crash harness shrink the WAL's thresholds); with
 * `walEvents` the apply cycle's moments come back to `onWalEvent`.
 */
export type WorkerTarget =
  { config: z.input<typeof StoreConfigSchema> } | { lmdb: Omit<LmdbStoreOptions, 'wal'> & { wal?: Omit<Partial<WalTuning>, 'onEvent'>; walEvents?: boolean } };

export interface WorkerStoreOptions {
  onWalEvent?: (e: WalEvent) => void;
}

/**
 * The worker's first module: entry.js beside this file in dist/ (bin/pobox.js). Run as
 * TypeScript (`node --import tsx`: tests, benches), a worker on Node 20 does not get the
 * parent's loader hooks, so it starts from a module that loads entry.ts, registering
 * tsx's hooks in the worker first when the import says it cannot read .ts.
 */
function workerScript(): URL {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new URL('./entry.js', here);
  const entry = new URL('./entry.ts', here).href;
  // Node versions whose workers inherit the hooks load it on the first try; the retry
  // needs another URL (the loader keeps the failed one's answer).
  const code = [
    `try { await import(${JSON.stringify(entry)}); }`,
    `catch (err) { if (err?.code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw err;`,
    `const { register } = await import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}); register(); await import(${JSON.stringify(`${entry}?tsx`)}); }`,
  ].join('\n');
  return new URL(`data:text/javascript,${encodeURIComponent(code)}`);
}

const deaths = new WeakSet<Error>();

/** True for the error a WorkerStore reports when its worker died (not a single call's failure). */
export function isStoreWorkerDeath(err: unknown): boolean {
  return err instanceof Error && deaths.has(err);
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  append: boolean;
}

export class WorkerStore implements MailboxStore {
  /** Answers `capacity()` when the engine meters its backing service (DynamoDB), else absent. */
  capacity?: () => StoreCapacity;

  private readonly worker: Worker;
  private info: ReadyInfo | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly count: StoreCounters = { keysRead: 0, keysWritten: 0, keysDeleted: 0 };
  /** The engine's capacity() as of the last answer (its fields named by the ready answer). */
  private readonly metered: Record<string, number> = {};
  private capacityKeys: string[] | undefined;
  private readonly backgroundListeners = new Set<(err: unknown) => void>();
  /** Set when the worker died: every call is answered with this (UNAVAILABLE). */
  private failure: PoboxError | undefined;
  private lastWorkerError: Error | undefined;
  /** close() was called: later calls are refused as on a closed engine. */
  private closing: Promise<void> | undefined;
  private closedForCalls = false;
  private terminating = false;
  private readonly opened: Promise<void>;
  private openSettle: { resolve: () => void; reject: (e: Error) => void } | undefined;

  constructor(
    target: WorkerTarget,
    private readonly opts: WorkerStoreOptions = {},
  ) {
    this.opened = new Promise<void>((resolve, reject) => (this.openSettle = { resolve, reject }));
    this.worker = new Worker(workerScript(), { workerData: { target } });
    this.worker.on('message', (a: Answer) => this.onAnswer(a));
    this.worker.on('error', (err) => (this.lastWorkerError = err));
    this.worker.on('exit', (code) => this.onExit(code));
  }

  /** Resolves once the engine is open in the worker; rejects with its open error. */
  ready(): Promise<void> {
    return this.opened;
  }

  get engine(): string {
    return this.info?.engine ?? 'worker';
  }

  get capabilities(): StoreCapabilities {
    return this.info?.capabilities ?? { embedded: false };
  }

  counters(): StoreCounters {
    return { ...this.count };
  }

  onBackgroundFailure(listener: (err: unknown) => void): void {
    this.backgroundListeners.add(listener);
  }

  append(items: readonly AppendItem[], limits: AppendLimits): Promise<AppendOutcome[]> {
    return this.call('append', [items, limits]);
  }
  read(req: ReadRequest): Promise<ReadPage> {
    return this.call('read', [req]);
  }
  readIfRegistered(req: ReadRequest): Promise<ReadPage | undefined> {
    return this.call('readIfRegistered', [req]);
  }
  ack(user: UserId, device: DeviceId, upToSeq: Seq, opts?: AckOptions): Promise<AckOutcome> {
    return this.call('ack', opts === undefined ? [user, device, upToSeq] : [user, device, upToSeq, opts]);
  }
  registerDevice(user: UserId, device: DeviceId, start: DeviceStart, now: number, maxDevices: number): Promise<RegisterOutcome> {
    return this.call('registerDevice', [user, device, start, now, maxDevices]);
  }
  removeDevice(user: UserId, device: DeviceId): Promise<RemoveOutcome> {
    return this.call('removeDevice', [user, device]);
  }
  listDevices(user: UserId): Promise<DeviceCursor[]> {
    return this.call('listDevices', [user]);
  }
  stats(user: UserId, now: number): Promise<MailboxStats> {
    return this.call('stats', [user, now]);
  }
  purge(user: UserId): Promise<PurgeOutcome> {
    return this.call('purge', [user]);
  }
  sweep(now: number, max: number): Promise<SweepOutcome> {
    return this.call('sweep', [now, max]);
  }
  exportPage(user: UserId, afterSeq: Seq, upTo: Seq, limit: number): Promise<ExportPage> {
    return this.call('exportPage', [user, afterSeq, upTo, limit]);
  }
  restore(snapshot: MailboxSnapshot): Promise<RestoreOutcome> {
    return this.call('restore', [snapshot]);
  }
  users(opts?: { after?: UserId; limit?: number }): Promise<UserId[]> {
    return this.call('users', opts === undefined ? [] : [opts]);
  }

  /** Close the engine in the worker (it applies and syncs as it always does), then end the thread. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        if (!this.failure) await this.call('close', []);
      } finally {
        this.closedForCalls = true;
        this.terminating = true;
        await this.worker.terminate();
      }
    })();
    return this.closing;
  }

  /**
   * Stop the worker thread now, without closing the engine, as a crash inside it would:
   * the store then fails as after any unexpected death (tests of that path).
   */
  async terminateThread(): Promise<void> {
    await this.worker.terminate();
  }

  private call<T>(method: string, args: unknown[]): Promise<T> {
    if (this.closedForCalls) return Promise.reject(closedError('store'));
    if (this.failure) return Promise.reject(new PoboxError('UNAVAILABLE', this.failure.message));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      try {
        this.worker.postMessage([id, method, args]);
      } catch (err) {
        // Arguments structured clone cannot copy (a function, a symbol): a caller's bug.
        reject(new PoboxError('INTERNAL', `store worker could not be sent ${method}: ${(err as Error).message}`));
        return;
      }
      // The worker keeps this process alive only while it owes an answer, as an in-process
      // engine's pending write does; an idle open store lets the process exit.
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, append: method === 'append' });
    });
  }

  private settled(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker.unref();
    return p;
  }

  private onAnswer(a: Answer): void {
    readState(a, this.count, this.metered, this.capacityKeys);
    switch (a[0]) {
      case K_OK: {
        const p = this.settled(a[1]);
        p?.resolve(p.append ? outcomesFromWire(a[2] as unknown[]) : a[2]);
        return;
      }
      case K_ERR: {
        const err = fromWire(a[2] as WireError);
        if (a[1] === 0) {
          // The engine did not open: end the thread, answer the opener with the engine's error.
          this.terminating = true;
          this.worker.terminate().catch(() => undefined);
          this.openSettle?.reject(err);
          return;
        }
        this.settled(a[1])?.reject(err);
        return;
      }
      case K_BACKGROUND: {
        const err = fromWire(a[2] as WireError);
        for (const l of this.backgroundListeners) l(err);
        return;
      }
      case K_WAL:
        this.opts.onWalEvent?.(a[2] as WalEvent);
        return;
      case K_READY: {
        const info = a[2] as ReadyInfo;
        this.info = info;
        if (info.capacityKeys) {
          this.capacityKeys = info.capacityKeys;
          readState(a, this.count, this.metered, this.capacityKeys);
          this.capacity = () => ({ ...this.metered }) as unknown as StoreCapacity;
        }
        if (this.pending.size === 0) this.worker.unref();
        this.openSettle?.resolve();
        return;
      }
      default:
        return;
    }
  }

  private onExit(code: number): void {
    const expected = this.terminating;
    const why = this.lastWorkerError ? `${this.lastWorkerError.name}: ${this.lastWorkerError.message}` : `exit code ${code}`;
    const err = expected
      ? closedError('store')
      : new PoboxError('UNAVAILABLE', `the store worker stopped (${why}); the ${this.engine} engine is unavailable until the process restarts`);
    if (!expected) this.failure = err;
    this.openSettle?.reject(new PoboxError('UNAVAILABLE', `the store worker stopped before the engine opened (${why})`));
    for (const [, p] of this.pending) p.reject(expected ? err : new PoboxError('UNAVAILABLE', err.message));
    this.pending.clear();
    if (!expected) {
      deaths.add(err);
      for (const l of this.backgroundListeners) l(err);
    }
  }
}

/** Open `target` in a new worker thread; resolves once the engine is open there. */
export async function openWorkerStore(target: WorkerTarget, opts: WorkerStoreOptions = {}): Promise<WorkerStore> {
  const store = new WorkerStore(target, opts);
  await store.ready();
  return store;
}
