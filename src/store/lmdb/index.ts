/**
 * The embedded engine: a write-ahead log in front of one LMDB environment, zero set-up.
 *
 * Write path. Every mutation (a send batch, an ack, a device registration or removal)
 * is decided here, synchronously, against the in-memory state (resident.ts: the meta of
 * every user with unapplied changes, plus what LMDB holds), then logged as ONE record of
 * its effect (wal/ops.ts) and applied to that state in the same synchronous step. Its
 * promise resolves once the log group holding the record is fdatasync'd (wal/log.ts).
 * Seq assignment, dedupe, quotas and cursor moves therefore stay single-threaded and
 * authoritative, and the log order is the order they were decided in.
 *
 * Apply. Off the hot path (a timer, or the resident index reaching its size limit), the
 * state of every changed user is captured at the log's last lsn L and, once L is synced,
 * written to LMDB by async puts (lmdb-js runs the B-tree work on its write thread and
 * commits each event turn's writes as one transaction). Messages, dedupe and expiry
 * entries go first, in chunks of at most `applyChunk` writes per turn so no turn of the
 * loop is held long (unless the loop is saturated anyway: `applyChunkMaxBusy`); once
 * those transactions are durable, ONE last transaction writes the tombs, sender
 * counters, metas and `applied = L`. A message that every device acked
 * before its apply was captured is never written to the B-tree (its dedupe entry is, with
 * one grouped expiry entry per user: a resend must still be recognised, keys.ts). After
 * the last commit, log segments holding only records <= L are deleted.
 *
 * Durability and ordering, the argument:
 *  - Acknowledged means on disk: a call resolves only after `synced(lsn)` of its record
 *    (or, when it changed nothing, of the last record that changed its user).
 *  - Prefix: the log is written in lsn order and recovery stops at the first record that
 *    is torn, fails its checksum or breaks the lsn sequence, so what survives a crash is
 *    a prefix of the decisions, each one applied to exactly the state it was decided on.
 *  - LMDB is always the state after a synced prefix (`applied`), plus at most some
 *    entries of records after it: an apply waits for `synced(L)` before it writes, so
 *    everything it writes belongs to records that survive any crash; `applied` commits in
 *    the last transaction with the metas, sender counters and tombs, after every chunk
 *    is durable (a chunk whose commit failed fails the apply before that).
 *  - Those extra entries (an apply that crashed or failed between its chunks) change no
 *    decision and no answer, because of what they are:
 *      - a message put: its append record is replayed, so the message is resident again,
 *        and readers take resident seqs from memory (LMDB is read only below the first
 *        resident seq, and every message LMDB held at `applied` is older than it). A
 *        replayed message is flagged `replayed`, so deleting it leaves a tomb and the next
 *        apply removes the copy. Acks and removals count what they delete from the same
 *        merged view, so counts and sender shares come out as live.
 *      - a dedupe put: replay puts the same entry (or a newer one for the same id) in
 *        memory, which a send consults before LMDB.
 *      - an expiry entry: only the sweeper reads them, under the gate after everything
 *        logged is applied; the next apply writes the same entries again, or a group
 *        naming the same dedupe entries (a leftover group only removes dedupe entries
 *        whose seq it names, and those are gone by then or are the same ones).
 *    Tombs are never written early: an ack replayed over LMDB without the messages it
 *    deleted would count fewer deletes than it did live.
 *  - Recovery = LMDB (state at `applied`, plus such entries) + replay of the surviving
 *    records after it, through the same effect functions as the live path. Records <=
 *    applied are skipped, so a crash during an apply (before, between or after its
 *    commits) or during a trim replays nothing twice and loses nothing.
 *  - No reader sees what a crash could take back: read/stats/listDevices first wait for
 *    the user's last record to be synced, and a read shows no seq above the user's last
 *    seq at the moment it started (everything up to it is synced by then). A seq is thus
 *    never shown before it is durable, so it can never be given to another message.
 *  - Cursors never move backwards and deletes never lose an unacked message: an ack is
 *    logged after the messages it covers and replayed through the same delete rules.
 *  - Rare whole-store operations (purge, sweep, users) take a gate: new mutations wait,
 *    everything logged is applied, then they run directly on LMDB as before. With nothing
 *    unapplied, LMDB alone is the whole truth while they run.
 *  - A failed write (a log group not written or synced, an apply whose commit failed: a
 *    full disk, EIO) stops the engine: memory may hold decisions the disk does not, so
 *    every call is refused UNAVAILABLE, and nothing in the failed group was acknowledged
 *    (its callers were rejected). Recovery is the restart path run in place, retried with
 *    backoff: the log is cut back to the end of its last synced group and the cut fsync'd
 *    (a segment started for the failed group is deleted), memory is dropped, and LMDB plus
 *    the surviving log are replayed through the same effect functions. The lsns and seqs
 *    of the cut records are given again: no reader saw them (reads wait for sync), and the
 *    cut is durable before any new record is written, so no later recovery can take an
 *    old record for the continuation of the log.
 *
 * Reads merge LMDB's range (below the first resident seq, minus tombs) with the resident
 * messages: no gap and no duplicate at the boundary (see resident.ts for why).
 *
 * Threads: the B-tree work of an apply runs on lmdb-js's write thread (async puts), and
 * the decisions must stay on one thread to stay authoritative. That thread is the caller's,
 * or, with `worker: true` (`--store-worker`), a worker thread that runs this whole engine
 * unchanged behind the same contract (src/store/worker/host.ts).
 */
import { mkdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { ensureDurableDir, fsyncDir } from '../../core/durable-files.js';
import { open, type Database, type RootDatabase } from 'lmdb';
import { Backoff } from '../../core/backoff.js';
import { PoboxError, ackBeyondLastSeq, closedError, deviceNotRegistered, mailboxFull, mailboxNotEmpty, senderQuotaExceeded, tooManyDevices } from '../../core/errors.js';
import type { DeviceId, MessageId, Seq, UserId } from '../../core/ids.js';
import type { DeviceCursor, DeviceStart, GapReason, MailboxStats, ReadPage, StoredMessage } from '../../core/types.js';
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
  type DeviceMap,
  type Removed,
} from '../rules.js';
import { newEpoch } from '../epoch.js';
import {
  DEDUPE_GROUP,
  dedupeKey,
  expiryKey,
  messageKey,
  messageRange,
  metaKey,
  pastUserKey,
  senderKey,
  senderRange,
  seqOf,
  type DedupeValue,
  type ExpiryKey,
  type ExpiryValue,
  type MailboxKey,
  type MessageValue,
  type MetaValue,
  type SenderValue,
} from './keys.js';
import { answerCommitFailure, commitFailureCause } from './commit-leak.js';
import { copyMeta, firstResidentSeq, newState, residentAfter, type UserState } from './resident.js';
import { openWal, type WalLog } from './wal/log.js';
import { MAX_PAYLOAD_BYTES } from './wal/record.js';
import {
  decodeOp,
  encodeOp,
  entryValue,
  OP_ACK,
  OP_APPEND,
  OP_REGISTER,
  OP_REMOVE,
  OP_RESTORE,
  type AckOp,
  type AppendEntry,
  type RegisterOp,
  type RemoveOp,
  type RestoreOp,
} from './wal/ops.js';

/**
 * Moments of the apply cycle, for crash tests that want their kills to land in them:
 * 'apply' (captured), 'staged' (its chunks are durable in LMDB, its last transaction not
 * yet written), 'applied', 'trim', 'trimmed'.
 */
export type WalEvent = 'apply' | 'staged' | 'applied' | 'trim' | 'trimmed';

export interface WalTuning {
  /** Apply whatever changed at least this often. */
  applyIntervalMs: number;
  /** Resident index size that forces an apply (at twice this, new sends wait for it). */
  maxResidentMessages: number;
  maxResidentBytes: number;
  /** Start a new log segment past this size; only whole segments are trimmed. */
  segmentBytes: number;
  /**
   * Most LMDB writes an apply issues in one event-loop turn (each costs the loop about a
   * microsecond to encode and queue): a larger apply is written in chunks, one per turn.
   */
  applyChunk: number;
  /**
   * Chunk an apply only when the event loop was busy at most this share of the time since
   * the last apply began (1: always). Chunks keep a lightly loaded loop's turns short, which
   * is what live delivery's tail needs; on a saturated loop they only add LMDB commits and
   * stretch the apply (the in-process post office at 4,096 sends in flight: 46-50k sends/s
   * chunked against 61-66k in one turn, over 100,000 recipients), while every message
   * already waits behind a queue of work, so a loop that busy writes the apply in one turn.
   */
  applyChunkMaxBusy: number;
  /** Apply everything on close, so a clean restart replays nothing. */
  applyOnClose: boolean;
  onEvent?: (e: WalEvent) => void;
}

/** The initial LMDB map: virtual address space, not disk or memory (see the open call). */
const INITIAL_MAP_BYTES = 16 * 1024 ** 3;

export const DEFAULT_WAL: WalTuning = {
  applyIntervalMs: 500,
  maxResidentMessages: 100_000,
  maxResidentBytes: 64 * 1024 * 1024,
  segmentBytes: 64 * 1024 * 1024,
  applyChunk: 200,
  applyChunkMaxBusy: 0.5,
  applyOnClose: true,
};

export interface LmdbStoreOptions {
  /** Directory holding the environment and its `wal/` directory; created if missing. */
  path: string;
  /** Most entries a read scans past (targeted at other devices, expired) before returning a short page. */
  scanBudget?: number;
  wal?: Partial<WalTuning>;
}

const ZERO_SENDER: SenderValue = { count: 0, bytes: 0 };

function emptyMeta(epoch: string = newEpoch()): MetaValue {
  return { epoch, lastSeq: 0, count: 0, bytes: 0, devices: {} };
}

/** A mailbox an import may write into: none yet, or one that never stored a message and has no device. */
function isEmptyMailbox(meta: MetaValue | undefined): boolean {
  return !meta || (meta.lastSeq === 0 && Object.keys(meta.devices).length === 0);
}

interface Merged {
  seq: Seq;
  v: MessageValue;
}

/** Dedupe entries of never-stored messages an apply names in one expiry entry (keys.ts). */
interface DedupeGroup {
  lo: number;
  hi: number;
  chars: number;
  ids: Array<[MessageId, Seq]>;
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** What an apply wrote, so its effects can be dropped from memory once it committed. */
interface Captured {
  lsn: number;
  users: UserId[];
  tombs: Array<[UserId, Seq[]]>;
  dedupe: Array<[UserId, MessageId, DedupeValue]>;
  senders: Array<[UserId, UserId, SenderValue]>;
}

export class LmdbStore implements MailboxStore {
  readonly engine = 'lmdb';
  readonly capabilities: StoreCapabilities = { embedded: true };

  private readonly root: RootDatabase;
  /** Meta, messages and dedupe entries of every user, under the user's prefix (keys.ts). */
  private readonly mailboxes: Database<MetaValue | MessageValue | DedupeValue | SenderValue, MailboxKey>;
  private readonly expiry: Database<ExpiryValue, ExpiryKey>;
  /** `applied`: the last log record whose effects LMDB holds. */
  private readonly walState: Database<number, string>;
  private readonly wal: WalLog;
  private readonly tuning: WalTuning;
  private readonly scanBudget: number;
  private readonly count: StoreCounters = { keysRead: 0, keysWritten: 0, keysDeleted: 0 };
  private closed = false;
  private failure: Error | undefined;
  /** A failed write stops the engine until `recover` has rebuilt it from disk (tried with backoff). */
  private recovering: Promise<void> | null = null;
  private recoveryTimer: NodeJS.Timeout | undefined;
  private readonly recoveryBackoff = new Backoff({ baseMs: 250, maxMs: 5000, jitter: 'equal' });
  /** In-place recoveries after a failed write, for tests and metrics. */
  recoveries = 0;
  private recoveryError: Error | undefined;
  private closing = false;

  private readonly states = new Map<UserId, UserState>();
  private dirty = new Set<UserId>();
  private newDedupe: Array<[UserId, MessageId, DedupeValue]> = [];
  private newExpiry: Array<[ExpiryKey, MessageId]> = [];
  private residentMessages = 0;
  private residentBytes = 0;
  private tombCount = 0;
  private applying: Promise<void> | null = null;
  /** Event-loop utilisation when the last apply began: how busy the loop has been since. */
  private applyLoopMark = performance.eventLoopUtilization();
  /** Records are being replayed from the log (open, recovery): see ResidentMessage.replayed. */
  private replaying = false;
  private gate: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout;
  /** What the log recovery found, for tests and logs. */
  readonly recovery: { replayed: number; stop: string };

  constructor(opts: LmdbStoreOptions) {
    mkdirSync(opts.path, { recursive: true });
    this.tuning = { ...DEFAULT_WAL, ...opts.wal };
    // A variable, not a literal: `useRecords` is an encoder option lmdb-js passes on but does not declare.
    const options = {
      path: opts.path,
      // The path is always a directory (made above). lmdb-js otherwise takes a path whose
      // last part has a dot (`/var/lib/pobox.d`, mktemp's `tmp.XXXX`) for a file name and
      // fails to open a directory there ("Is a directory").
      noSubdir: false,
      // Resolve write promises only once the commit is fsync'd: an apply is durable
      // before the log segments it covers are deleted.
      overlappingSync: false,
      noSync: false,
      compression: false,
      cache: false,
      maxDbs: 8,
      // Address space only (the file grows with the data, and lmdb-js still grows the map
      // past it): without it lmdb-js starts small and remaps as the data grows, and the old
      // mappings it keeps alive count the same file pages again in RSS (a throughput run:
      // 412 MiB of file-backed RSS for a 196 MiB data file; 237 MiB with this).
      mapSize: INITIAL_MAP_BYTES,
      // Values as plain MessagePack maps. lmdb-js's default (records, with no shared
      // structures) stored every value with its field names as an inline record
      // definition, and every read of one built a new reader for it: msgpackr's
      // recordDefinition took 5.8% of a reconnect storm's server time. Values written
      // that way still read (the decoder understands both), and so do these everywhere.
      useRecords: false,
    };
    this.root = open(options);
    this.mailboxes = this.root.openDB<MetaValue | MessageValue | DedupeValue | SenderValue, MailboxKey>('mailboxes', { cache: false });
    this.expiry = this.root.openDB<ExpiryValue, ExpiryKey>('expiry', { cache: false });
    this.walState = this.root.openDB<number, string>('wal', { cache: false });
    this.scanBudget = opts.scanBudget ?? 1000;
    const applied = this.walState.get('applied') ?? 0;
    const onEvent = this.tuning.onEvent;
    let recovered;
    try {
      recovered = openWal(join(opts.path, 'wal'), applied, {
        segmentBytes: this.tuning.segmentBytes,
        onFailure: (err) => this.fail(err),
        ...(onEvent ? { onEvent } : {}),
      });
      this.wal = recovered.log;
      this.replayAll(recovered.records);
    } catch (err) {
      recovered?.log.close().catch(() => undefined);
      this.root.close().catch(() => undefined);
      throw err;
    }
    this.recovery = { replayed: recovered.records.length, stop: recovered.stop };
    this.timer = setInterval(() => this.kick(), this.tuning.applyIntervalMs);
    this.timer.unref();
  }

  counters(): StoreCounters {
    return { ...this.count };
  }

  /** Messages and bytes held only in memory right now (tests, the RSS benchmark). */
  residentSize(): { messages: number; bytes: number; users: number; tombs: number } {
    return { messages: this.residentMessages, bytes: this.residentBytes, users: this.states.size, tombs: this.tombCount };
  }

  /** Bytes appended to the log since open. */
  walBytesWritten(): number {
    return this.wal.bytesWritten;
  }

  /**
   * The log's own counters since open: records appended (a send batch, e.g. a whole group
   * send, is one) and groups fdatasync'd (durable commits). Tests prove batching with them.
   */
  walCounters(): { records: number; commits: number; bytes: number } {
    return { records: this.wal.recordsAppended, commits: this.wal.groupsSynced, bytes: this.wal.bytesWritten };
  }

  private ensureOpen(): void {
    if (this.closed) throw closedError('store');
    if (this.failure) {
      const retry = this.recoveryError ? `; recovery failed: ${this.recoveryError.message}` : '; recovering';
      throw new PoboxError('UNAVAILABLE', `lmdb store failed: ${this.failure.message}${retry}`, { cause: this.failure });
    }
  }

  private overLimit(factor: number): boolean {
    const max = factor * this.tuning.maxResidentMessages;
    // Dedupe and expiry entries wait for the apply even when their message was deleted.
    return this.residentMessages >= max || this.residentBytes >= factor * this.tuning.maxResidentBytes || this.tombCount >= max || this.newExpiry.length >= 2 * max;
  }

  /** Wait while a whole-store operation runs, or while the resident index is far over its limit. */
  private async admit(): Promise<void> {
    for (;;) {
      this.ensureOpen();
      if (this.gate) await this.gate;
      else if (this.overLimit(2)) await this.startApply();
      else return;
    }
  }

  private async durable(lsn: number): Promise<void> {
    try {
      await this.wal.synced(lsn);
    } catch (err) {
      throw new PoboxError('UNAVAILABLE', `write-ahead log write failed: ${(err as Error).message}`, { cause: err });
    }
  }

  private log(type: number, op: unknown): number {
    try {
      return this.wal.append(type, encodeOp(op));
    } catch (err) {
      throw new PoboxError('UNAVAILABLE', `write-ahead log write failed: ${(err as Error).message}`, { cause: err });
    }
  }

  // ---- state ---------------------------------------------------------------------------

  private lmdbMeta(user: UserId): MetaValue | undefined {
    return this.mailboxes.get(metaKey(user)) as MetaValue | undefined;
  }

  /** The current meta: memory if the user has unapplied changes, else LMDB. */
  private metaOf(user: UserId): MetaValue | undefined {
    this.count.keysRead++;
    return this.states.get(user)?.meta ?? this.lmdbMeta(user);
  }

  /**
   * The user's in-memory state, created when absent from `read` (the meta the caller just
   * read from LMDB, in the same synchronous step: not read twice), else from LMDB, else
   * empty with `epoch`.
   */
  private own(user: UserId, epoch?: string | null, read?: MetaValue): UserState {
    let s = this.states.get(user);
    if (!s) {
      s = newState(read ?? this.lmdbMeta(user) ?? emptyMeta(epoch ?? undefined));
      this.states.set(user, s);
    }
    return s;
  }

  private touched(user: UserId, s: UserState, lsn: number): void {
    s.lsn = lsn;
    this.dirty.add(user);
  }

  /** What `from` holds in `user`'s mailbox now: memory when changed since the last apply, else LMDB. */
  private senderOf(user: UserId, s: UserState | undefined, from: UserId): SenderValue {
    const v = s?.senders.get(from);
    if (v) return v;
    this.count.keysRead++;
    return (this.mailboxes.get(senderKey(user, from)) as SenderValue | undefined) ?? ZERO_SENDER;
  }

  /**
   * Move a sender counter (fair quotas). Never below zero: a mailbox written before the
   * counters existed holds messages nobody counted.
   */
  private addSender(user: UserId, s: UserState, from: UserId, count: number, bytes: number): void {
    const cur = this.senderOf(user, s, from);
    s.senders.set(from, { count: Math.max(0, cur.count + count), bytes: Math.max(0, cur.bytes + bytes) });
  }

  /** Wait until everything logged for `user` so far is durable. */
  private async userSynced(user: UserId): Promise<void> {
    const s = this.states.get(user);
    if (s && s.lsn > this.wal.syncedLsn) await this.durable(s.lsn);
  }

  /**
   * The user's messages with lo < seq <= hi in seq order: LMDB's below the first resident
   * seq (minus tombs), then the resident ones. Counts every entry examined.
   */
  private *merged(user: UserId, lo: Seq, hi: Seq): Generator<Merged> {
    const s = this.states.get(user);
    const lmdbHi = Math.min(hi, firstResidentSeq(s) - 1);
    if (lmdbHi > lo) {
      for (const { key, value } of this.mailboxes.getRange(messageRange(user, lo, lmdbHi))) {
        this.count.keysRead++;
        const seq = seqOf(key);
        if (s && s.tombs.has(seq)) continue;
        yield { seq, v: value as MessageValue };
      }
    }
    if (!s) return;
    for (let i = residentAfter(s, lo); i < s.resident.length; i++) {
      const r = s.resident[i]!;
      if (r.seq > hi) return;
      this.count.keysRead++;
      yield r;
    }
  }

  /**
   * Delete what a plan allows, in memory: a resident message not yet captured by an apply
   * simply disappears (it never reaches the B-tree); anything LMDB may hold gets a tomb.
   */
  private applyDeletes(user: UserId, s: UserState, plan: DeletePlan): { deleted: number; bytes: number } {
    const doomed: Merged[] = [];
    if (plan.all) for (const m of this.merged(user, plan.all.lo, plan.all.hi)) doomed.push(m);
    if (plan.targeted) {
      const { device } = plan.targeted;
      for (const m of this.merged(user, plan.targeted.lo, plan.targeted.hi)) if (m.v.toDevice === device) doomed.push(m);
    }
    if (doomed.length === 0) return { deleted: 0, bytes: 0 };
    let bytes = 0;
    const gone = new Set<Seq>();
    const bySender = new Map<UserId, { count: number; bytes: number }>();
    for (const d of doomed) {
      if (gone.has(d.seq)) continue;
      gone.add(d.seq);
      bytes += d.v.bytes;
      this.count.keysDeleted++;
      const b = bySender.get(d.v.from) ?? { count: 0, bytes: 0 };
      b.count++;
      b.bytes += d.v.bytes;
      bySender.set(d.v.from, b);
    }
    for (const [from, b] of bySender) this.addSender(user, s, from, -b.count, -b.bytes);
    const first = firstResidentSeq(s);
    const keep = [];
    for (const r of s.resident) {
      if (!gone.has(r.seq)) keep.push(r);
      else {
        this.residentMessages--;
        this.residentBytes -= r.v.bytes;
        // LMDB may hold it (an apply in flight, or one that crashed between its chunks).
        if (r.applying || r.replayed) this.tomb(s, r.seq);
      }
    }
    s.resident = keep;
    for (const seq of gone) if (seq < first) this.tomb(s, seq);
    return { deleted: gone.size, bytes };
  }

  private tomb(s: UserState, seq: Seq): void {
    if (s.tombs.has(seq)) return;
    s.tombs.add(seq);
    this.tombCount++;
  }

  // ---- effects: the live path and recovery both change state only through these ----------

  private replayAll(records: ReadonlyArray<{ type: number; payload: Uint8Array; lsn: number }>): void {
    this.replaying = true;
    try {
      for (const r of records) this.replay(r.type, r.payload, r.lsn);
    } finally {
      this.replaying = false;
    }
  }

  private replay(type: number, payload: Uint8Array, lsn: number): void {
    switch (type) {
      case OP_APPEND:
        for (const e of decodeOp<AppendEntry[]>(payload)) this.effectAppend(e, lsn);
        return;
      case OP_ACK: {
        const [u, d, upTo, skip] = decodeOp<AckOp>(payload);
        this.effectAck(u, d, upTo, skip === 1, lsn);
        return;
      }
      case OP_REGISTER: {
        const [u, d, cursor, at, epoch] = decodeOp<RegisterOp>(payload);
        this.effectRegister(u, d, cursor, at, epoch, lsn);
        return;
      }
      case OP_REMOVE: {
        const [u, d] = decodeOp<RemoveOp>(payload);
        this.effectRemove(u, d, lsn);
        return;
      }
      case OP_RESTORE:
        this.effectRestore(decodeOp<RestoreOp>(payload), lsn);
        return;
      default:
        throw new PoboxError('UNAVAILABLE', `write-ahead log record ${lsn} has unknown type ${type}`);
    }
  }

  private effectAppend(e: AppendEntry, lsn: number): void {
    const [user, seq] = e;
    const s = this.own(user, e[2]);
    const v = entryValue(e);
    s.meta.lastSeq = seq;
    s.meta.count += 1;
    s.meta.bytes += v.bytes;
    s.resident.push({ seq, v, applying: false, replayed: this.replaying });
    this.addSender(user, s, v.from, 1, v.bytes);
    const d: DedupeValue = { seq, expiresAt: v.expiresAt };
    s.dedupe.set(v.id, d);
    this.newDedupe.push([user, v.id, d]);
    this.newExpiry.push([expiryKey(v.expiresAt, user, seq), v.id]);
    this.residentMessages++;
    this.residentBytes += v.bytes;
    this.touched(user, s, lsn);
  }

  /** `read`: the user's meta as the caller just read it (metaOf), so it is not read again. */
  private effectAck(user: UserId, device: DeviceId, upToSeq: Seq, skip: boolean, lsn: number, read?: MetaValue): { deleted: number; bytes: number } {
    const cur = this.states.get(user)?.meta ?? read ?? this.lmdbMeta(user);
    if (!cur || !hasDevice(cur.devices, device) || !ackChanges(cur.devices[device]!, upToSeq)) return { deleted: 0, bytes: 0 };
    const s = this.own(user, undefined, cur);
    const dev = s.meta.devices[device]!;
    const oldMin = minCursor(s.meta.devices);
    const oldCursor = dev.cursor;
    // An admin's skip notes what it passes, counted before the deletes below.
    const skipped: Seq[] = [];
    if (skip) for (const m of this.merged(user, oldCursor, upToSeq)) if (m.v.toDevice === undefined || m.v.toDevice === device) skipped.push(m.seq);
    dev.cursor = Math.max(oldCursor, upToSeq);
    // Replayed through here too, so a notice is cleared by the same ack after a crash.
    const gap = skip ? gapAfterSkip(dev.gap, skipped) : gapAfterAck(dev.gap, upToSeq);
    if (gap) dev.gap = gap;
    else delete dev.gap;
    const r = this.applyDeletes(user, s, planAfterAck(oldMin, minCursor(s.meta.devices), device, oldCursor, dev.cursor));
    s.meta.count -= r.deleted;
    s.meta.bytes -= r.bytes;
    this.touched(user, s, lsn);
    return r;
  }

  private effectRegister(
    user: UserId,
    device: DeviceId,
    cursor: Seq,
    registeredAt: number,
    epoch: string | null,
    lsn: number,
    read?: MetaValue,
  ): { deleted: number; bytes: number } {
    const cur = this.states.get(user)?.meta ?? read ?? this.lmdbMeta(user);
    if (cur && hasDevice(cur.devices, device)) return { deleted: 0, bytes: 0 };
    const s = this.own(user, epoch, cur);
    const oldMin = minCursor(s.meta.devices);
    s.meta.devices[device] = { cursor, registeredAt };
    const r = this.applyDeletes(user, s, planAfterRegister(oldMin, minCursor(s.meta.devices)));
    s.meta.count -= r.deleted;
    s.meta.bytes -= r.bytes;
    this.touched(user, s, lsn);
    return r;
  }

  private effectRemove(user: UserId, device: DeviceId, lsn: number, read?: MetaValue): { deleted: number; bytes: number } {
    const cur = this.states.get(user)?.meta ?? read ?? this.lmdbMeta(user);
    if (!cur || !hasDevice(cur.devices, device)) return { deleted: 0, bytes: 0 };
    const s = this.own(user, undefined, cur);
    const oldMin = minCursor(s.meta.devices);
    const removedCursor = s.meta.devices[device]!.cursor;
    delete s.meta.devices[device];
    const r = this.applyDeletes(user, s, planAfterRemove(oldMin, minCursor(s.meta.devices), device, removedCursor, s.meta.lastSeq));
    s.meta.count -= r.deleted;
    s.meta.bytes -= r.bytes;
    this.touched(user, s, lsn);
    return r;
  }

  /**
   * An import into an empty mailbox: the epoch, head and devices it had, and its messages
   * stored as sends at their own seqs (resident, with their dedupe, expiry and sender
   * entries), so everything after it (reads, acks, the apply, recovery) treats them as
   * any other message. LMDB holds nothing of the user's (the mailbox was empty), so the
   * resident messages are the whole mailbox.
   */
  private effectRestore(op: RestoreOp, lsn: number): void {
    const [user, epoch, lastSeq, devices, entries] = op;
    if (!isEmptyMailbox(this.states.get(user)?.meta ?? this.lmdbMeta(user))) return;
    const s = this.own(user, epoch);
    s.meta.epoch = epoch;
    for (const [device, cursor, registeredAt, gap] of devices) s.meta.devices[device] = gap ? { cursor, registeredAt, gap } : { cursor, registeredAt };
    for (const e of entries) this.effectAppend(e, lsn);
    s.meta.lastSeq = lastSeq;
    this.touched(user, s, lsn);
  }

  // ---- apply: log -> LMDB --------------------------------------------------------------------

  private kick(): void {
    if (this.applying || this.closed || this.failure) return;
    if (this.dirty.size === 0) return;
    this.startApply().catch(() => undefined);
  }

  private startApply(): Promise<void> {
    if (this.applying) return this.applying;
    if (this.dirty.size === 0) return Promise.resolve();
    const p = this.applyOnce()
      .catch(async (err: unknown) => {
        const failure = await commitFailureCause(err);
        this.fail(failure);
        throw new PoboxError('UNAVAILABLE', `lmdb apply failed: ${failure.message}`, { cause: err });
      })
      .finally(() => {
        this.applying = null;
        if (!this.closed && !this.failure && this.overLimit(1)) this.kick();
      });
    this.applying = p;
    return p;
  }

  private async applyOnce(): Promise<void> {
    // Capture synchronously: the state of every changed user as of the last lsn.
    const lsn = this.wal.lastLsn;
    const users = [...this.dirty];
    this.dirty = new Set();
    const metas: Array<[UserId, MetaValue]> = [];
    const puts: Array<[UserId, Seq, MessageValue]> = [];
    const tombs: Array<[UserId, Seq[]]> = [];
    const senders: Array<[UserId, UserId, SenderValue]> = [];
    for (const u of users) {
      const s = this.states.get(u)!;
      metas.push([u, copyMeta(s.meta)]);
      for (const [from, v] of s.senders) senders.push([u, from, v]);
      for (const r of s.resident) {
        if (r.applying) continue;
        r.applying = true;
        puts.push([u, r.seq, r.v]);
      }
      if (s.tombs.size > 0) tombs.push([u, [...s.tombs]]);
    }
    const dedupe = this.newDedupe;
    const expiry = this.expiryWrites(this.newExpiry);
    this.newDedupe = [];
    this.newExpiry = [];
    this.tuning.onEvent?.('apply');

    // LMDB may only ever hold the state after a durable prefix of the log.
    await this.wal.synced(lsn);
    // lmdb-js runs the B-tree work on its write thread, but encoding and queueing each
    // write costs this thread about a microsecond, and one event turn of async writes is
    // one LMDB transaction. A large apply is therefore written in chunks of `applyChunk`
    // writes, one per turn (each its own transaction), holding only entries that replay
    // re-creates identically and that nothing reads ahead of `applied`: messages, dedupe
    // and expiry entries (the argument at the top of this file). Tombs, sender counters,
    // metas and `applied` follow in ONE last turn, once every chunk is durable. A loop that
    // was mostly busy since the last apply writes it all in one turn (applyChunkMaxBusy).
    const commits: Array<Promise<unknown>> = [];
    // A commit is handled the moment it is queued, not when it is awaited: a chunk's commit
    // can fail while later chunks are still being written, turns before the Promise.all
    // below, and an unhandled rejection ends the process (crash-only) where the engine
    // should refuse calls and recover in place. answerCommitFailure also handles lmdb-js's
    // other promises of that commit (commit-leak.ts).
    // The first failure also stops the chunks: no more commits are tried against a disk
    // (or an environment) that just failed one.
    let failed: { err: unknown } | undefined;
    const track = (w: Promise<unknown>): void => {
      w.catch((err: unknown) => {
        failed ??= { err };
        answerCommitFailure(err);
      });
      commits.push(w);
    };
    const pause = async (): Promise<void> => {
      await nextTurn();
      if (failed) throw failed.err;
    };
    const chunk = Math.max(1, this.tuning.applyChunk);
    const lastTurn = 1 + metas.length + senders.length + tombs.reduce((n, [, seqs]) => n + seqs.length, 0);
    const loop = performance.eventLoopUtilization(this.applyLoopMark);
    this.applyLoopMark = performance.eventLoopUtilization();
    const chunked = puts.length + dedupe.length + expiry.length + lastTurn > chunk && loop.utilization <= this.tuning.applyChunkMaxBusy;
    try {
      let inTurn = 0;
      let p: Promise<unknown> | undefined;
      // After a write: true when this turn has had its share (the caller then waits for the next turn).
      const full = (): boolean => {
        if (!chunked || ++inTurn < chunk) return false;
        track(p!);
        inTurn = 0;
        return true;
      };
      for (const [u, seq, v] of puts) {
        p = this.mailboxes.put(messageKey(u, seq), v);
        if (full()) await pause();
      }
      for (const [u, id, d] of dedupe) {
        p = this.mailboxes.put(dedupeKey(u, id), d);
        if (full()) await pause();
      }
      for (const [key, v] of expiry) {
        p = this.expiry.put(key, v);
        if (full()) await pause();
      }
      if (p && inTurn > 0) track(p);
      if (chunked) {
        // The last turn may only commit once everything before it is on disk: `applied`
        // must never stand for a chunk whose transaction failed.
        await Promise.all(commits);
        this.tuning.onEvent?.('staged');
      }
      for (const [u, seqs] of tombs) for (const seq of seqs) p = this.mailboxes.remove(messageKey(u, seq));
      for (const [u, from, v] of senders) p = v.count > 0 ? this.mailboxes.put(senderKey(u, from), v) : this.mailboxes.remove(senderKey(u, from));
      for (const [u, meta] of metas) p = this.mailboxes.put(metaKey(u), meta);
      p = this.walState.put('applied', lsn);
      track(p);
      await Promise.all(commits);
    } catch (err) {
      answerCommitFailure(err);
      throw err;
    }
    this.tuning.onEvent?.('applied');
    this.forget({ lsn, users, tombs, dedupe, senders });
    this.wal.trim(lsn);
    this.recoveryBackoff.reset();
  }

  // ---- a failed write: stop, then recover in place ---------------------------------------

  /**
   * A log group or an apply failed (a full disk, EIO). Memory may now hold decisions the
   * disk does not, so every call is refused UNAVAILABLE until `recover` has rebuilt memory
   * from what is on disk; it is tried after a backoff, and again until it succeeds.
   */
  private fail(err: Error): void {
    this.failure ??= err;
    this.scheduleRecovery();
  }

  private scheduleRecovery(): void {
    if (this.closing || this.recoveryTimer || this.recovering) return;
    this.recoveryTimer = setTimeout(() => {
      this.recoveryTimer = undefined;
      if (this.closing) return;
      this.recovering = this.recover()
        .catch((err: unknown) => {
          // Still failing (the cut or the read did not work): refusals say so too.
          this.recoveryError = err instanceof Error ? err : new Error(String(err));
        })
        .finally(() => {
          this.recovering = null;
          if (this.failure) this.scheduleRecovery();
        });
    }, this.recoveryBackoff.next().delayMs);
    this.recoveryTimer.unref();
  }

  /**
   * The restart path, in place: wait for what is in flight, cut the log back to its last
   * synced record (wal/log.ts reset), drop every in-memory effect and replay the surviving
   * log over LMDB (the state at `applied`) through the same effect functions as at open.
   */
  private async recover(): Promise<void> {
    for (;;) {
      if (this.applying) await this.applying.catch(() => undefined);
      else if (this.gate) await this.gate;
      else break;
    }
    if (this.closing) return;
    const applied = this.walState.get('applied') ?? 0;
    const { records } = await this.wal.reset(applied);
    this.states.clear();
    this.dirty = new Set();
    this.newDedupe = [];
    this.newExpiry = [];
    this.residentMessages = 0;
    this.residentBytes = 0;
    this.tombCount = 0;
    this.replayAll(records);
    this.failure = undefined;
    this.recoveryError = undefined;
    this.recoveries++;
  }

  /**
   * The expiry entries an apply writes: a stored message's as captured; those of messages
   * deleted before the apply captured them (never stored: only their dedupe entry is
   * written) grouped per user into one entry each (keys.ts). A captured entry whose
   * message is resident now is stored by this apply; one that is not was deleted.
   */
  private expiryWrites(captured: ReadonlyArray<[ExpiryKey, MessageId]>): Array<[ExpiryKey, ExpiryValue]> {
    const out: Array<[ExpiryKey, ExpiryValue]> = [];
    const open = new Map<UserId, DedupeGroup>();
    const close = (user: UserId, g: DedupeGroup): void => {
      out.push(g.ids.length === 1 ? [expiryKey(g.hi, user, g.ids[0]![1]), g.ids[0]![0]] : [expiryKey(g.hi, user, -g.ids[0]![1]), g.ids]);
    };
    for (const e of captured) {
      const [[expiresAt, user, seq], id] = e;
      const s = this.states.get(user);
      if (s) {
        const i = residentAfter(s, seq - 1);
        if (i < s.resident.length && s.resident[i]!.seq === seq) {
          out.push(e);
          continue;
        }
      }
      let g = open.get(user);
      if (
        g &&
        (g.ids.length >= DEDUPE_GROUP.maxIds || g.chars + id.length > DEDUPE_GROUP.maxIdChars || Math.max(g.hi, expiresAt) - Math.min(g.lo, expiresAt) > DEDUPE_GROUP.spanMs)
      ) {
        close(user, g);
        g = undefined;
      }
      if (!g) {
        g = { lo: expiresAt, hi: expiresAt, chars: 0, ids: [] };
        open.set(user, g);
      }
      g.lo = Math.min(g.lo, expiresAt);
      g.hi = Math.max(g.hi, expiresAt);
      g.chars += id.length;
      g.ids.push([id, seq]);
    }
    for (const [user, g] of open) close(user, g);
    return out;
  }

  /** After an apply committed: drop from memory what LMDB now holds. */
  private forget(c: Captured): void {
    for (const [u, seqs] of c.tombs) {
      const s = this.states.get(u)!;
      for (const seq of seqs) if (s.tombs.delete(seq)) this.tombCount--;
    }
    for (const [u, id, d] of c.dedupe) {
      const s = this.states.get(u);
      if (s && s.dedupe.get(id) === d) s.dedupe.delete(id);
    }
    for (const [u, from, v] of c.senders) {
      const s = this.states.get(u);
      if (s && s.senders.get(from) === v) s.senders.delete(from);
    }
    for (const u of c.users) {
      const s = this.states.get(u)!;
      let n = 0;
      while (n < s.resident.length && s.resident[n]!.applying) {
        this.residentMessages--;
        this.residentBytes -= s.resident[n]!.v.bytes;
        n++;
      }
      if (n > 0) s.resident.splice(0, n);
      if (s.lsn <= c.lsn && s.resident.length === 0 && s.tombs.size === 0 && s.dedupe.size === 0 && s.senders.size === 0) this.states.delete(u);
    }
  }

  /** Apply everything logged so far. */
  private async applyAll(): Promise<void> {
    while (this.applying || this.dirty.size > 0) await this.startApply();
  }

  /** Run `fn` with new mutations held back and LMDB holding everything logged. */
  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.ensureOpen();
    while (this.gate) await this.gate;
    let open!: () => void;
    this.gate = new Promise((r) => (open = r));
    try {
      await this.applyAll();
      return await fn();
    } finally {
      this.gate = null;
      open();
    }
  }

  /**
   * A durable LMDB write transaction, for the whole-store operations run under the gate.
   * A child transaction: if `fn` throws, its own writes are rolled back.
   */
  private async write<T>(fn: () => T): Promise<T> {
    try {
      return (await this.root.childTransaction(fn)) as T;
    } catch (err) {
      answerCommitFailure(err); // lmdb-js's other promises of this failure (commit-leak.ts)
      if (err instanceof PoboxError) throw err;
      throw new PoboxError('UNAVAILABLE', `lmdb write failed: ${(err as Error).message}`, { cause: err });
    }
  }

  // ---- the contract --------------------------------------------------------------------------

  async append(items: readonly AppendItem[], limits: AppendLimits): Promise<AppendOutcome[]> {
    if (items.length === 0) return [];
    if (this.gate || this.overLimit(2) || this.closed || this.failure) await this.admit();
    // Mailboxes that do not exist yet: only created (with this epoch) if a send is stored.
    // Made only when a batch meets a user with no state in memory (not the live path).
    let fresh: Map<UserId, { meta: MetaValue; created: boolean }> | undefined;
    const entries: AppendEntry[] = [];
    const out: AppendOutcome[] = [];
    const touched: UserState[] = [];
    for (const item of items) {
      const s = this.states.get(item.to);
      let f = s ? undefined : fresh?.get(item.to);
      if (!s && !f) {
        this.count.keysRead++;
        const m = this.lmdbMeta(item.to);
        f = { meta: m ?? emptyMeta(), created: !m };
        (fresh ??= new Map()).set(item.to, f);
      }
      const meta = s ? s.meta : f!.meta;
      // Dedupe first: a resend of a stored message answers with its seq even if its
      // target device has since been removed.
      this.count.keysRead++;
      const seen = s?.dedupe.get(item.id) ?? (this.mailboxes.get(dedupeKey(item.to, item.id)) as DedupeValue | undefined);
      if (seen && seen.expiresAt > item.sentAt) {
        out.push({ ok: true, seq: seen.seq, duplicate: true, epoch: meta.epoch });
        continue;
      }
      if (item.toDevice !== undefined && !hasDevice(meta.devices, item.toDevice)) {
        out.push({ ok: false, error: deviceNotRegistered(item.to, item.toDevice, 'toDevice') });
        continue;
      }
      if (limits.maxSenderMessages !== undefined && !item.senderQuotaExempt) {
        const held = this.senderOf(item.to, s, item.from);
        if (held.count + 1 > limits.maxSenderMessages || held.bytes + item.bytes > (limits.maxSenderBytes ?? Infinity)) {
          out.push({ ok: false, error: senderQuotaExceeded(item.to, item.from) });
          continue;
        }
      }
      if (meta.count + 1 > limits.maxMailboxMessages || meta.bytes + item.bytes > limits.maxMailboxBytes) {
        out.push({ ok: false, error: mailboxFull(item.to) });
        continue;
      }
      const e: AppendEntry = [
        item.to,
        meta.lastSeq + 1,
        f?.created ? meta.epoch : null,
        item.id,
        item.from,
        item.body,
        item.bytes,
        item.sentAt,
        item.expiresAt,
        item.toDevice ?? null,
        item.receipt ? 1 : 0,
      ];
      entries.push(e);
      // The state starts from the meta read above (not read again by effectAppend).
      if (f) this.states.set(item.to, newState(f.meta));
      // Applied now (lsn set below), so later items of this batch see it: dedupe, quota.
      this.effectAppend(e, 0);
      fresh?.delete(item.to);
      touched.push(this.states.get(item.to)!);
      this.count.keysWritten += 3;
      out.push({ ok: true, seq: e[1], duplicate: false, epoch: meta.epoch });
    }
    if (entries.length === 0) {
      for (const item of items) await this.userSynced(item.to);
      return out;
    }
    let lsn: number;
    try {
      lsn = this.log(OP_APPEND, entries);
    } catch (err) {
      this.fail(err as Error); // memory holds effects the log does not: stop here
      throw err;
    }
    for (const s of touched) s.lsn = lsn;
    this.count.keysWritten += touched.length === 1 ? 1 : new Set(touched).size; // one meta per user
    if (this.overLimit(1)) this.kick();
    await this.durable(lsn);
    // Duplicates answered from an earlier, maybe not yet synced record: that one is older.
    return out;
  }

  async read(req: ReadRequest): Promise<ReadPage> {
    this.ensureOpen();
    // Nothing above the last seq assigned when the read started is shown, and all of that
    // is durable once the user's last record is synced.
    const s = this.states.get(req.user);
    const cap = s?.meta.lastSeq;
    // Awaited only when something is still to sync: most reads need no promise or turn for it.
    if (s && s.lsn > this.wal.syncedLsn) await this.durable(s.lsn);
    const page = this.pageOf(req, cap);
    if (!page) throw deviceNotRegistered(req.user, req.device);
    return page;
  }

  async readIfRegistered(req: ReadRequest): Promise<ReadPage | undefined> {
    this.ensureOpen();
    const s = this.states.get(req.user);
    const cap = s?.meta.lastSeq; // as in read()
    if (s && s.lsn > this.wal.syncedLsn) await this.durable(s.lsn);
    return this.pageOf(req, cap);
  }

  /** The page of a read whose user's records are durable; undefined for an unknown device. `cap`: the last seq when the read started. */
  private pageOf(req: ReadRequest, cap: Seq | undefined): ReadPage | undefined {
    const meta = this.metaOf(req.user);
    if (!meta || !hasDevice(meta.devices, req.device)) return undefined;
    const lastSeq = cap ?? meta.lastSeq;
    const cursor = meta.devices[req.device]!.cursor;
    const after = Math.max(req.afterSeq, cursor);
    const messages: StoredMessage[] = [];
    let nextAfter = after;
    let scanned = 0;
    let more = false;
    const expired: Seq[] = [];
    for (const { seq, v } of this.merged(req.user, after, lastSeq)) {
      if (messages.length >= req.limit || scanned >= this.scanBudget) {
        more = true; // an entry exists past what we return
        break;
      }
      scanned++;
      nextAfter = seq;
      if (v.toDevice !== undefined && v.toDevice !== req.device) continue;
      if (v.expiresAt <= req.now) {
        expired.push(seq); // skipped unseen: the page says so
        continue;
      }
      messages.push(toStored(req.user, seq, v));
    }
    const page: ReadPage = { epoch: meta.epoch, messages, nextAfter, more, lastSeq, cursor };
    const gap = meta.devices[req.device]!.gap;
    if (gap) page.gap = gap;
    if (expired.length > 0) page.expired = expired;
    return page;
  }

  async ack(user: UserId, device: DeviceId, upToSeq: Seq, opts: AckOptions = {}): Promise<AckOutcome> {
    if (this.gate || this.closed || this.failure) await this.admit();
    const meta = this.metaOf(user);
    if (!meta || !hasDevice(meta.devices, device)) {
      throw deviceNotRegistered(user, device);
    }
    if (upToSeq > meta.lastSeq) {
      throw ackBeyondLastSeq(upToSeq, meta.lastSeq);
    }
    const dev = meta.devices[device]!;
    const cursor = dev.cursor;
    const skip = opts.skip === true && upToSeq > cursor;
    if (!skip && !ackChanges(dev, upToSeq)) {
      await this.userSynced(user);
      return { cursor, moved: false, deleted: 0, deletedBytes: 0 };
    }
    const lsn = this.log(OP_ACK, (skip ? [user, device, upToSeq, 1] : [user, device, upToSeq]) satisfies AckOp);
    const { deleted, bytes } = this.effectAck(user, device, upToSeq, skip, lsn, meta);
    this.count.keysWritten++;
    if (this.overLimit(1)) this.kick();
    await this.durable(lsn);
    // An ack at or below the cursor that got here only removed a notice the cursor was past.
    return upToSeq > cursor ? { cursor: upToSeq, moved: true, deleted, deletedBytes: bytes } : { cursor, moved: false, deleted: 0, deletedBytes: 0 };
  }

  async registerDevice(user: UserId, device: DeviceId, start: DeviceStart, now: number, maxDevices: number): Promise<RegisterOutcome> {
    if (this.gate || this.closed || this.failure) await this.admit();
    const meta = this.metaOf(user);
    const existing = meta?.devices[device];
    if (meta && existing && hasDevice(meta.devices, device)) {
      await this.userSynced(user);
      return { device, cursor: existing.cursor, registeredAt: existing.registeredAt, created: false };
    }
    const devices = meta?.devices ?? {};
    if (Object.keys(devices).length >= maxDevices) {
      throw tooManyDevices(user, maxDevices);
    }
    const cursor = startCursor(devices, start, meta?.lastSeq ?? 0);
    const epoch = meta ? null : newEpoch();
    const lsn = this.log(OP_REGISTER, [user, device, cursor, now, epoch] satisfies RegisterOp);
    const { deleted, bytes } = this.effectRegister(user, device, cursor, now, epoch, lsn, meta);
    this.count.keysWritten++;
    await this.durable(lsn);
    return { device, cursor, registeredAt: now, created: true, deleted, deletedBytes: bytes };
  }

  async removeDevice(user: UserId, device: DeviceId): Promise<RemoveOutcome> {
    if (this.gate || this.closed || this.failure) await this.admit();
    const meta = this.metaOf(user);
    if (!meta || !hasDevice(meta.devices, device)) {
      await this.userSynced(user);
      return { removed: false, deleted: 0, deletedBytes: 0 };
    }
    const lsn = this.log(OP_REMOVE, [user, device] satisfies RemoveOp);
    const { deleted, bytes } = this.effectRemove(user, device, lsn, meta);
    this.count.keysWritten++;
    await this.durable(lsn);
    return { removed: true, deleted, deletedBytes: bytes };
  }

  async listDevices(user: UserId): Promise<DeviceCursor[]> {
    this.ensureOpen();
    await this.userSynced(user);
    const meta = this.metaOf(user);
    return meta ? deviceList(meta.devices) : [];
  }

  async stats(user: UserId, now: number): Promise<MailboxStats> {
    this.ensureOpen();
    await this.userSynced(user);
    const meta = this.metaOf(user);
    if (!meta) return { user, epoch: '', lastSeq: 0, pending: 0, pendingBytes: 0, oldestAgeMs: null, devices: [] };
    let oldestAgeMs: number | null = null;
    for (const { v } of this.merged(user, 0, Number.MAX_SAFE_INTEGER - 1)) {
      oldestAgeMs = Math.max(0, now - v.sentAt);
      break;
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

  async exportPage(user: UserId, afterSeq: Seq, upTo: Seq, limit: number): Promise<ExportPage> {
    this.ensureOpen();
    await this.userSynced(user);
    const meta = this.metaOf(user);
    if (!meta) return { messages: [], nextAfter: afterSeq, more: false };
    // Every stored message is pending here: an ack or a removal deletes what it releases.
    const messages: StoredMessage[] = [];
    let nextAfter = afterSeq;
    let scanned = 0;
    for (const { seq, v } of this.merged(user, afterSeq, Math.min(upTo, meta.lastSeq))) {
      if (messages.length >= limit || scanned >= this.scanBudget) return { messages, nextAfter, more: true };
      scanned++;
      nextAfter = seq;
      messages.push(toStored(user, seq, v));
    }
    return { messages, nextAfter: Math.max(nextAfter, Math.min(upTo, meta.lastSeq)), more: false };
  }

  async restore(snapshot: MailboxSnapshot): Promise<RestoreOutcome> {
    if (this.gate || this.closed || this.failure) await this.admit();
    const { user } = snapshot;
    if (!isEmptyMailbox(this.metaOf(user))) throw mailboxNotEmpty(user);
    const entries: AppendEntry[] = snapshot.messages.map((m) => [user, m.seq, null, m.id, m.from, m.body, m.bytes, m.sentAt, m.expiresAt, m.toDevice ?? null, m.receipt ? 1 : 0]);
    const op: RestoreOp = [user, snapshot.epoch, snapshot.lastSeq, snapshot.devices.map((d) => [d.device, d.cursor, d.registeredAt, d.gap ?? null]), entries];
    const payload = encodeOp(op);
    if (payload.length > MAX_PAYLOAD_BYTES) {
      throw new PoboxError('PAYLOAD_TOO_LARGE', `the import of ${user} is ${payload.length} bytes; one import may be at most ${MAX_PAYLOAD_BYTES}`);
    }
    let lsn: number;
    try {
      lsn = this.wal.append(OP_RESTORE, payload);
    } catch (err) {
      throw new PoboxError('UNAVAILABLE', `write-ahead log write failed: ${(err as Error).message}`, { cause: err });
    }
    this.effectRestore(op, lsn);
    this.count.keysWritten += 1 + 3 * entries.length;
    if (this.overLimit(1)) this.kick();
    await this.durable(lsn);
    return { devices: snapshot.devices.length, messages: entries.length, bytes: entries.reduce((a, e) => a + e[6], 0) };
  }

  /** Delete a user's messages found in LMDB (only called under the gate: memory is empty). */
  private deleteRange(user: UserId, lo: Seq, hi: Seq): { deleted: number; bytes: number; removed: Removed[] } {
    const doomed: Array<{ seq: Seq; bytes: number; toDevice: DeviceId | undefined }> = [];
    for (const { key, value } of this.mailboxes.getRange(messageRange(user, lo, hi))) {
      this.count.keysRead++;
      const v = value as MessageValue;
      doomed.push({ seq: seqOf(key), bytes: v.bytes, toDevice: v.toDevice });
    }
    let deleted = 0;
    let bytes = 0;
    const removed: Removed[] = [];
    for (const d of doomed) {
      if (!this.mailboxes.removeSync(messageKey(user, d.seq))) continue;
      this.count.keysDeleted++;
      deleted++;
      bytes += d.bytes;
      removed.push(d);
    }
    return { deleted, bytes, removed };
  }

  async purge(user: UserId): Promise<PurgeOutcome> {
    return this.exclusive(() =>
      this.write(() => {
        const meta = this.lmdbMeta(user);
        this.count.keysRead++;
        if (!meta) return { deleted: 0, deletedBytes: 0 };
        const { deleted, bytes, removed } = this.deleteRange(user, 0, meta.lastSeq);
        // Devices that had not acked what went are told on their next read (same write).
        noteGaps(meta.devices, removed, 'purged');
        // Nothing stored: no sender holds any share of this mailbox any more.
        for (const key of [...this.mailboxes.getKeys(senderRange(user))]) {
          this.count.keysRead++;
          this.mailboxes.removeSync(key);
          this.count.keysDeleted++;
        }
        meta.count = 0;
        meta.bytes = 0;
        this.count.keysWritten++;
        this.mailboxes.putSync(metaKey(user), meta);
        return { deleted, deletedBytes: bytes };
      }),
    );
  }

  async sweep(now: number, max: number): Promise<SweepOutcome> {
    this.ensureOpen();
    // Cheap check first: most passes find nothing due and must not hold sends back.
    // An apply in flight holds expiry entries that are in neither place we can look.
    let due = this.applying !== null || this.newExpiry.some(([k]) => k[0] <= now);
    if (!due) {
      for (const _ of this.expiry.getKeys({ start: [0], end: [now + 1], limit: 1 })) due = true;
      this.count.keysRead++;
    }
    if (!due) return { expired: 0, expiredBytes: 0, cleaned: 0, more: false };
    return this.exclusive(() => this.sweepLmdb(now, max));
  }

  /**
   * Runs under the gate, after everything logged was applied (`exclusive`). No ack can land
   * between the removal of an expired message and the meta update that counts it, so none
   * is counted twice: while the gate is up no mutation is decided (an ack waits in `admit`;
   * one decided before the gate went up was applied by `applyAll`, so its message is gone
   * here and its expiry entry only cleans); removal, meta, gap notices and sender counters
   * are written by one synchronous callback in one LMDB transaction; and the gate opens
   * only after that commit, when memory holds no state of any user, so a later ack reads
   * the swept meta and finds no message to delete. test/store/lmdb/sweep-ack.test.ts races
   * an ack against each of these moments.
   */
  private async sweepLmdb(now: number, max: number): Promise<SweepOutcome> {
    const due: Array<{ key: ExpiryKey; id: ExpiryValue }> = [];
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
      const removed = new Map<UserId, Removed[]>();
      const senders = new Map<string, { user: UserId; from: UserId; count: number; bytes: number }>();
      for (const { key, id } of due) {
        const [expiresAt, user, seq] = key;
        if (typeof id !== 'string') {
          // Dedupe entries of messages never stored (keys.ts): each goes unless a newer message took its id.
          for (const [gid, gseq] of id) cleaned += this.dropDedupe(user, gid, gseq);
          this.expiry.removeSync(key);
          this.count.keysDeleted++;
          cleaned++;
          continue;
        }
        if (!metas.has(user)) {
          this.count.keysRead++;
          metas.set(user, this.lmdbMeta(user));
        }
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
            const gone = removed.get(user) ?? [];
            gone.push({ seq, toDevice: msg.toDevice });
            removed.set(user, gone);
          }
          const sk = JSON.stringify([user, msg.from]);
          const held = senders.get(sk) ?? { user, from: msg.from, count: 0, bytes: 0 };
          held.count++;
          held.bytes += msg.bytes;
          senders.set(sk, held);
        }
        cleaned += this.dropDedupe(user, id, seq);
        this.expiry.removeSync(expiryKey(expiresAt, user, seq));
        this.count.keysDeleted++;
        cleaned++;
      }
      for (const [user, meta] of metas) {
        if (!meta) continue;
        // Devices still below an expired message never saw it: a gap notice, in the same write.
        noteGaps(meta.devices, removed.get(user) ?? [], 'expired');
        this.count.keysWritten++;
        this.mailboxes.putSync(metaKey(user), meta);
      }
      for (const { user, from, count, bytes } of senders.values()) {
        this.count.keysRead++;
        const cur = this.mailboxes.get(senderKey(user, from)) as SenderValue | undefined;
        if (!cur) continue;
        const next = { count: Math.max(0, cur.count - count), bytes: Math.max(0, cur.bytes - bytes) };
        if (next.count > 0) this.mailboxes.putSync(senderKey(user, from), next);
        else this.mailboxes.removeSync(senderKey(user, from));
        this.count.keysWritten++;
      }
      return { expired, expiredBytes, cleaned, more };
    });
  }

  /** Remove a dedupe entry unless a newer message has taken its id since; 1 if removed. */
  private dropDedupe(user: UserId, id: MessageId, seq: Seq): number {
    this.count.keysRead++;
    const d = this.mailboxes.get(dedupeKey(user, id)) as DedupeValue | undefined;
    if (!d || d.seq !== seq) return 0;
    this.mailboxes.removeSync(dedupeKey(user, id));
    this.count.keysDeleted++;
    return 1;
  }

  async users(opts: { after?: UserId; limit?: number } = {}): Promise<UserId[]> {
    return this.exclusive(async () => {
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
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closing = true;
    clearInterval(this.timer);
    clearTimeout(this.recoveryTimer);
    this.recoveryTimer = undefined;
    if (this.recovering) await this.recovering;
    while (this.gate) await this.gate.catch(() => undefined);
    try {
      if (this.tuning.applyOnClose && !this.failure) await this.applyAll();
      else if (this.applying) await this.applying.catch(() => undefined);
    } finally {
      this.closed = true;
      await this.wal.close();
      await this.root.flushed;
      await this.root.close();
    }
  }
}

/** Store the gap notices a removal leaves beside the devices' cursors (the meta is written by the caller). */
function noteGaps(devices: DeviceMap, removed: readonly Removed[], reason: GapReason): void {
  for (const [device, gap] of gapsAfterRemoval(devices, removed, reason)) devices[device]!.gap = gap;
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
    // The log's directory and segments are made durable by wal/log.ts.
    ensureDurableDir(opts.path);
    const store = new LmdbStore(opts);
    fsyncDir(opts.path);
    return store;
  } catch (err) {
    // A path that is a file, unwritable, or an environment another program holds.
    throw new PoboxError('UNAVAILABLE', `cannot open the lmdb store at ${opts.path}: ${(err as Error).message}`, { cause: err, field: 'path' });
  }
}
