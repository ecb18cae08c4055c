/**
 * The write-ahead log's files: a directory of segments named by the lsn of their first
 * record (`0000000000000001.wal`), appended in order, one fdatasync per group.
 *
 * Group commit, once per event-loop turn: `append` encodes a record, gives it the next lsn
 * and queues it; at the end of the turn (setImmediate) the queued group is written with
 * one synchronous write, in lsn order, and made durable by an fdatasync: on the loop
 * itself when the group is small, no other sync runs and the loop is mostly idle (a live
 * message then waits for the disk and nothing else), on the thread pool otherwise (a
 * loaded server keeps working while the disk syncs; groups written meanwhile are covered
 * by the next sync).
 * `synced(lsn)` resolves once an fdatasync that started after `lsn` was written (and so
 * after every record before it: the file is written in lsn order) has returned.
 *
 * File-level durability: a new segment is fsync'd and then its directory, before any
 * record in it is acknowledged; a deleted segment's directory is fsync'd before trim
 * returns; a segment truncated at recovery is fsync'd before the log is used.
 *
 * Recovery (`openWal`): segments are read in lsn order; records must be whole, pass their
 * checksum and carry consecutive lsns. The first record that does not is where the log
 * ends: the segment is cut there and any later segment deleted, so a half-written record
 * can never be read, and the next record written reuses nothing after the cut.
 */
import { closeSync, fdatasync, fdatasyncSync, fstatSync, fsyncSync, ftruncateSync, openSync, writeSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ensureDurableDir, fsyncDir } from '../../../core/durable-files.js';
import { decodeAll, encodeRecord, type WalRecord } from './record.js';

const SUFFIX = '.wal';
const segmentName = (firstLsn: number): string => `${String(firstLsn).padStart(16, '0')}${SUFFIX}`;

export interface WalOptions {
  /** Start a new segment once the current one holds this many bytes (checked per group). */
  segmentBytes: number;
  /** Called with 'trim' before and 'trimmed' after segments are deleted (crash-test probes). */
  onEvent?: (event: 'trim' | 'trimmed') => void;
  /** Called once when a write or a sync fails (the log refuses appends until `reset`). */
  onFailure?: (err: Error) => void;
}

interface Segment {
  firstLsn: number;
  /** Last lsn written to it; firstLsn - 1 when empty. */
  lastLsn: number;
  name: string;
}

export interface RecoveredWal {
  log: WalLog;
  /** Records with lsn > appliedLsn, in order, for the caller to replay. */
  records: WalRecord[];
  /** How recovery ended: 'end' (clean), or why it cut the log. */
  stop: string;
}

/** Whether a process with this id is running (EPERM: it is, under another user). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Logs open in this process, by directory. */
const openHere = new Set<string>();

/**
 * One writer per log: two processes appending to the same segment would interleave
 * records. LMDB itself would allow a second process; the log does not. The lock file names
 * the holder's pid; a lock whose process is gone (SIGKILL, power loss) is taken over, and
 * so is one naming our own pid when this process has not opened the log (a restarted
 * container gets the same pid). A live unrelated process that reused the pid would be
 * mistaken for a holder: the open fails with a message naming it, never corrupts.
 */
function takeLock(dir: string): string {
  const key = resolve(dir);
  if (openHere.has(key)) throw new Error(`the write-ahead log in ${dir} is already open in this process`);
  const file = join(dir, 'LOCK');
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      try {
        writeSync(fd, String(process.pid));
      } finally {
        closeSync(fd);
      }
      openHere.add(key);
      return file;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
      const pid = Number(readFileSync(file, 'utf8'));
      if (pid !== process.pid && Number.isInteger(pid) && pid > 0 && alive(pid)) throw new Error(`the write-ahead log in ${dir} is in use by process ${pid}; stop it first`);
      unlinkSync(file);
    }
  }
}

function releaseLock(file: string): void {
  openHere.delete(resolve(dirname(file)));
  unlinkSync(file);
}

/** Create an empty segment and make its existence durable before it is used. */
function createSegment(dir: string, firstLsn: number): number {
  const fd = openSync(join(dir, segmentName(firstLsn)), 'wx');
  fsyncSync(fd);
  fsyncDir(dir);
  return fd;
}

/**
 * Open (or create) the log in `dir`, recovering what is in it. `appliedLsn` is the last
 * record already applied to the database: older records are skipped, and segments that
 * hold only such records are deleted.
 */
export function openWal(dir: string, appliedLsn: number, opts: WalOptions): RecoveredWal {
  ensureDurableDir(dir);
  const lock = takeLock(dir);
  try {
    const found = readSegments(dir, appliedLsn);
    const log = new WalLog(dir, found.segments, found.lastLsn, opts, lock);
    log.trim(appliedLsn);
    return { log, records: found.records, stop: found.stop };
  } catch (err) {
    releaseLock(lock);
    throw err;
  }
}

const isSegmentName = (n: string): boolean => /^\d{16}\.wal$/.test(n);

/** What recovery finds on disk: the segments, the records after `appliedLsn`, where the log ends. */
interface Found {
  segments: Segment[];
  records: WalRecord[];
  lastLsn: number;
  stop: string;
}

/**
 * Read the segments in lsn order and cut the log at the first record that cannot be
 * trusted (the cut and the deletion of later segments are made durable here).
 */
function readSegments(dir: string, appliedLsn: number): Found {
  const names = readdirSync(dir).filter(isSegmentName).sort();
  const segments: Segment[] = [];
  const records: WalRecord[] = [];
  let lastLsn = appliedLsn;
  let stop = 'end';
  let damagedFrom = -1;
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    const firstLsn = Number(name.slice(0, 16));
    // A segment must continue the one before it, unless everything in between was applied.
    const prevLast = segments.length ? segments[segments.length - 1]!.lastLsn : undefined;
    if (prevLast !== undefined ? firstLsn !== prevLast + 1 && firstLsn > appliedLsn + 1 : firstLsn > appliedLsn + 1) {
      stop = `gap before segment ${name}`;
      damagedFrom = i;
      break;
    }
    const buf = readFileSync(join(dir, name));
    const got = decodeAll(buf, firstLsn);
    const seg: Segment = { firstLsn, lastLsn: firstLsn - 1 + got.records.length, name };
    segments.push(seg);
    for (const r of got.records) if (r.lsn > appliedLsn) records.push(r);
    if (got.records.length) lastLsn = Math.max(lastLsn, seg.lastLsn);
    if (got.stop !== 'end') {
      stop = `${got.stop} record in ${name} at byte ${got.validBytes}`;
      const fd = openSync(join(dir, name), 'r+');
      try {
        ftruncateSync(fd, got.validBytes);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      damagedFrom = i + 1;
      break;
    }
  }
  if (damagedFrom >= 0 && damagedFrom < names.length) {
    for (const name of names.slice(damagedFrom)) unlinkSync(join(dir, name));
    fsyncDir(dir);
  }
  // Whatever we are about to replay must be on disk before anyone sees it (a process
  // crash leaves written-but-unsynced pages in the page cache).
  for (const seg of segments) {
    if (seg.lastLsn <= appliedLsn) continue;
    const fd = openSync(join(dir, seg.name), 'r+');
    try {
      fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  return { segments, records, lastLsn, stop };
}

interface Waiter {
  lsn: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * A group of at most this many bytes is made durable by an fdatasync on the event loop
 * itself when no other sync is running and the loop has mostly been idle since the last
 * group (INLINE_SYNC_MAX_BUSY, not counting its own inline syncs). At low load that is the
 * fastest way to the disk: a live message waits for the disk, not for thread-pool round
 * trips. A busy loop (a reconnect storm, a throughput run) or a large group syncs on the
 * thread pool instead, and the loop works on meanwhile.
 */
const INLINE_SYNC_BYTES = 64 * 1024;
const INLINE_SYNC_MAX_BUSY = 0.5;

export class WalLog {
  private lastLsnValue: number;
  private syncedLsnValue: number;
  /** The last lsn written to a segment (in the page cache; durable once a sync covers it). */
  private writtenLsn: number;
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  private flushScheduled = false;
  /** Event-loop utilisation at the last flush, and the time spent in inline syncs since. */
  private loopMark = performance.eventLoopUtilization();
  private inlineSyncMs = 0;
  /** The fdatasync running on the thread pool: the fd it runs on and the lsn it makes durable. */
  private syncing: { fd: number; upTo: number; seg: NonNullable<WalLog['active']>; size: number } | undefined;
  /** Segments finished while a sync ran on them: closed when it returns. */
  private retired: number[] = [];
  private waiters: Waiter[] = [];
  private failure: Error | undefined;
  /** The segment being appended to: `size` bytes written, the first `synced` of them durable. */
  private active: { seg: Segment; fd: number; size: number; synced: number } | undefined;
  /** Where `reset` must cut the log: the durable end of the segment that was being written. */
  private cut: { name: string; size: number } | undefined;
  private closed = false;
  /** Bytes appended since open, for the write-amplification benchmark and tests. */
  bytesWritten = 0;
  /** Records appended since open (tests, benchmarks). */
  recordsAppended = 0;
  /** fdatasyncs of the log that returned since open, inline or on the thread pool: its commits. */
  groupsSynced = 0;

  constructor(
    private readonly dir: string,
    private segments: Segment[],
    lastLsn: number,
    private readonly opts: WalOptions,
    private readonly lockFile: string,
  ) {
    this.lastLsnValue = lastLsn;
    this.syncedLsnValue = lastLsn;
    this.writtenLsn = lastLsn;
  }

  get lastLsn(): number {
    return this.lastLsnValue;
  }

  get syncedLsn(): number {
    return this.syncedLsnValue;
  }

  /** Queue a record; returns its lsn. It is durable once `synced(lsn)` resolves. */
  append(type: number, payload: Uint8Array): number {
    if (this.failure) throw this.failure;
    if (this.closed) throw new Error('write-ahead log is closed');
    const lsn = ++this.lastLsnValue;
    this.recordsAppended++;
    const rec = encodeRecord(lsn, type, payload);
    this.queue.push(rec);
    this.queuedBytes += rec.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // Everything appended in this turn of the event loop (every ack read from the
      // sockets, every send batch of the post office) forms one group.
      setImmediate(this.flush);
    }
    return lsn;
  }

  synced(lsn: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (lsn <= this.syncedLsnValue) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ lsn, resolve, reject }));
  }

  /** Resolves when everything appended so far is durable. */
  flushed(): Promise<void> {
    return this.synced(this.lastLsnValue);
  }

  /** The segment to append to, rotating past segmentBytes (synchronous, rare). */
  private activeSegment(firstLsn: number): NonNullable<WalLog['active']> {
    const a = this.active;
    if (a && a.size < this.opts.segmentBytes) return a;
    if (a) {
      // Its records must be on disk before a sync of the next segment may stand for them.
      fdatasyncSync(a.fd);
      this.groupsSynced++;
      a.synced = a.size;
      this.advance(this.writtenLsn);
      if (this.syncing?.fd === a.fd) this.retired.push(a.fd);
      else closeSync(a.fd);
    }
    this.active = undefined;
    // Reuse the newest existing segment only when it is the one the log continues.
    const last = this.segments[this.segments.length - 1];
    if (!a && last && last.lastLsn === firstLsn - 1) {
      const fd = openSync(join(this.dir, last.name), 'r+');
      const size = fstatSync(fd).size;
      if (size < this.opts.segmentBytes) {
        // Recovery made what is in it durable before the log was opened.
        this.active = { seg: last, fd, size, synced: size };
        return this.active;
      }
      closeSync(fd);
    }
    closeSync(createSegment(this.dir, firstLsn));
    const seg: Segment = { firstLsn, lastLsn: firstLsn - 1, name: segmentName(firstLsn) };
    this.segments.push(seg);
    this.active = { seg, fd: openSync(join(this.dir, seg.name), 'r+'), size: 0, synced: 0 };
    return this.active;
  }

  /**
   * Write the queued group, in lsn order, with a synchronous write (the page cache takes it
   * in microseconds), then make it durable: inline when it is small and nothing else is
   * syncing, else on the thread pool. Any fdatasync covers every byte written before it
   * started, so syncs may overlap: each one advances `synced` to what was written when it began.
   */
  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.failure || this.queue.length === 0) return;
    const group = this.queue;
    const bytes = this.queuedBytes;
    this.queue = [];
    this.queuedBytes = 0;
    try {
      const a = this.activeSegment(this.writtenLsn + 1);
      const buf = group.length === 1 ? group[0]! : Buffer.concat(group, bytes);
      let off = 0;
      while (off < buf.length) off += writeSync(a.fd, buf, off, buf.length - off, a.size + off);
      a.size += buf.length;
      this.writtenLsn += group.length;
      a.seg.lastLsn = this.writtenLsn;
      this.bytesWritten += buf.length;
      if (!this.syncing && bytes <= INLINE_SYNC_BYTES && this.loopMostlyIdle()) {
        const t0 = performance.now();
        fdatasyncSync(a.fd);
        this.inlineSyncMs += performance.now() - t0;
        this.groupsSynced++;
        a.synced = a.size;
        this.advance(this.writtenLsn);
      } else this.syncInBackground();
    } catch (err) {
      this.fail(err);
    }
  };

  /** Whether the event loop was idle at least half the time since the last look (its own inline syncs not counted as work). */
  private loopMostlyIdle(): boolean {
    const now = performance.eventLoopUtilization();
    const d = performance.eventLoopUtilization(now, this.loopMark);
    this.loopMark = now;
    const busy = Math.max(0, d.active - this.inlineSyncMs);
    this.inlineSyncMs = 0;
    return busy <= INLINE_SYNC_MAX_BUSY * (busy + d.idle);
  }

  /** Start a thread-pool fdatasync of the active segment, unless one runs (it starts the next when it returns). */
  private syncInBackground(): void {
    if (this.syncing || this.failure || !this.active || this.writtenLsn <= this.syncedLsnValue) return;
    const a = this.active;
    const job = { fd: a.fd, upTo: this.writtenLsn, seg: a, size: a.size };
    this.syncing = job;
    fdatasync(job.fd, (err) => {
      this.syncing = undefined;
      for (const fd of this.retired.splice(0)) closeSync(fd);
      if (err) return this.fail(err);
      this.groupsSynced++;
      job.seg.synced = Math.max(job.seg.synced, job.size);
      this.advance(job.upTo);
      this.syncInBackground();
    });
  }

  private advance(lsn: number): void {
    if (lsn <= this.syncedLsnValue) return;
    this.syncedLsnValue = lsn;
    if (this.waiters.length === 0) return;
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.lsn <= lsn) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  private fail(err: unknown): void {
    const first = this.failure === undefined;
    this.failure ??= err instanceof Error ? err : new Error(String(err));
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(this.failure);
    if (first) this.opts.onFailure?.(this.failure);
  }

  /** Why the log refuses appends (a write or a sync failed), until `reset`. */
  get failed(): Error | undefined {
    return this.failure;
  }

  /**
   * Bring the log back in place, as a restart would, keeping the lock: nothing after the
   * last sync that returned was acknowledged (its waiters were rejected), so the segment
   * being written is cut back to its durable end and the cut fsync'd, a segment holding
   * nothing synced is deleted (the next one is created, and made durable, afresh), and the
   * log is read again from disk. Returns the records after `appliedLsn` for the caller to
   * replay. The caller appends nothing meanwhile. If the cut fails the log stays failed;
   * call again.
   */
  async reset(appliedLsn: number): Promise<{ records: WalRecord[]; stop: string }> {
    if (this.closed) throw new Error('write-ahead log is closed');
    // A group still to be written, a sync still on the thread pool: let them finish.
    while (this.flushScheduled || this.syncing) await new Promise((r) => setImmediate(r));
    if (this.waiters.length > 0) this.fail(new Error('write-ahead log is being reset'));
    this.failure ??= new Error('write-ahead log is being reset');
    this.queue = [];
    this.queuedBytes = 0;
    for (const fd of this.retired.splice(0)) closeSync(fd);
    const a = this.active;
    if (a) {
      this.active = undefined;
      this.cut = { name: a.seg.name, size: a.synced };
      closeSync(a.fd);
    }
    if (this.cut) {
      const fd = openSync(join(this.dir, this.cut.name), 'r+');
      try {
        ftruncateSync(fd, this.cut.size);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      this.cut = undefined;
    }
    const unsynced = readdirSync(this.dir).filter((n) => isSegmentName(n) && Number(n.slice(0, 16)) > this.syncedLsnValue);
    for (const name of unsynced) unlinkSync(join(this.dir, name));
    if (unsynced.length > 0) fsyncDir(this.dir);
    const found = readSegments(this.dir, appliedLsn);
    this.segments = found.segments;
    this.lastLsnValue = found.lastLsn;
    this.writtenLsn = found.lastLsn;
    this.syncedLsnValue = found.lastLsn;
    this.failure = undefined;
    return { records: found.records, stop: found.stop };
  }

  /**
   * Delete every segment whose records are all at or below `appliedLsn` (already in the
   * database), oldest first, never the segment being written. Synchronous: a crash
   * between two unlinks leaves a suffix of the log, which recovery handles.
   */
  trim(appliedLsn: number): number {
    let n = 0;
    while (this.segments.length > 1 && this.segments[0]!.lastLsn <= appliedLsn && this.segments[1]!.firstLsn <= appliedLsn + 1) {
      if (n === 0) this.opts.onEvent?.('trim');
      unlinkSync(join(this.dir, this.segments.shift()!.name));
      n++;
    }
    if (n > 0) {
      fsyncDir(this.dir);
      this.opts.onEvent?.('trimmed');
    }
    return n;
  }

  /** How many segment files there are (tests). */
  segmentCount(): number {
    return this.segments.length;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.flushed().catch(() => undefined);
    this.closed = true;
    // A failed log may still have a sync running on the thread pool: let it return first.
    while (this.syncing) await new Promise((r) => setImmediate(r));
    for (const fd of this.retired.splice(0)) closeSync(fd);
    if (this.active) closeSync(this.active.fd);
    this.active = undefined;
    releaseLock(this.lockFile);
  }
}

export { segmentName };
