/**
 * The write-ahead log's files: a directory of segments named by the lsn of their first
 * record (`0000000000000001.wal`), appended in order, one fdatasync per group.
 *
 * Group commit, pipelined: `append` encodes a record, gives it the next lsn and queues
 * it; at most one group is being written and synced at a time, and every record queued
 * meanwhile forms the next group. `synced(lsn)` resolves once a group holding `lsn` (and
 * so every record before it: the file is written in lsn order) is on disk.
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
import { closeSync, fdatasyncSync, fsyncSync, ftruncateSync, openSync, writeSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { open as openAsync, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ensureDurableDir, fsyncDir } from '../../../core/durable-files.js';
import { decodeAll, encodeRecord, type WalRecord } from './record.js';

const SUFFIX = '.wal';
const segmentName = (firstLsn: number): string => `${String(firstLsn).padStart(16, '0')}${SUFFIX}`;

export interface WalOptions {
  /** Start a new segment once the current one holds this many bytes (checked per group). */
  segmentBytes: number;
  /** Called with 'trim' before and 'trimmed' after segments are deleted (crash-test probes). */
  onEvent?: (event: 'trim' | 'trimmed') => void;
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
    const names = readdirSync(dir)
      .filter((n) => n.endsWith(SUFFIX) && /^\d{16}\.wal$/.test(n))
      .sort();
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
    const log = new WalLog(dir, segments, lastLsn, opts, lock);
    log.trim(appliedLsn);
    return { log, records, stop };
  } catch (err) {
    releaseLock(lock);
    throw err;
  }
}

interface Waiter {
  lsn: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class WalLog {
  private lastLsnValue: number;
  private syncedLsnValue: number;
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  private writing = false;
  private scheduled = false;
  private waiters: Waiter[] = [];
  private failure: Error | undefined;
  private active: { seg: Segment; fh: FileHandle | undefined; fd: number; size: number } | undefined;
  private closed = false;
  /** Bytes appended since open, for the write-amplification benchmark and tests. */
  bytesWritten = 0;

  constructor(
    private readonly dir: string,
    private segments: Segment[],
    lastLsn: number,
    private readonly opts: WalOptions,
    private readonly lockFile: string,
  ) {
    this.lastLsnValue = lastLsn;
    this.syncedLsnValue = lastLsn;
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
    const rec = encodeRecord(lsn, type, payload);
    this.queue.push(rec);
    this.queuedBytes += rec.length;
    if (!this.writing && !this.scheduled) {
      this.scheduled = true;
      // Records appended in the same synchronous run share the group.
      queueMicrotask(() => {
        this.scheduled = false;
        this.writeGroups().catch(() => undefined); // failures reach the waiters
      });
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

  private async ensureActive(firstLsn: number): Promise<NonNullable<WalLog['active']>> {
    const a = this.active;
    if (a && a.size < this.opts.segmentBytes) return a;
    if (a) await a.fh!.close();
    this.active = undefined;
    // Reuse the newest existing segment only when it is the one the log continues.
    const last = this.segments[this.segments.length - 1];
    let seg: Segment;
    let size = 0;
    if (!a && last && last.lastLsn === firstLsn - 1) {
      seg = last;
      const fh = await openAsync(join(this.dir, seg.name), 'r+');
      size = (await fh.stat()).size;
      if (size < this.opts.segmentBytes) {
        this.active = { seg, fh, fd: fh.fd, size };
        return this.active;
      }
      await fh.close();
    }
    closeSync(createSegment(this.dir, firstLsn));
    seg = { firstLsn, lastLsn: firstLsn - 1, name: segmentName(firstLsn) };
    this.segments.push(seg);
    const fh = await openAsync(join(this.dir, seg.name), 'r+');
    this.active = { seg, fh, fd: fh.fd, size: 0 };
    return this.active;
  }

  private async writeGroups(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      while (this.queue.length > 0 && !this.failure) {
        const group = this.queue;
        const bytes = this.queuedBytes;
        this.queue = [];
        this.queuedBytes = 0;
        const groupLast = this.syncedLsnValue + group.length;
        const groupFirst = this.syncedLsnValue + 1;
        const a = await this.ensureActive(groupFirst);
        const buf = group.length === 1 ? group[0]! : Buffer.concat(group, bytes);
        let off = 0;
        while (off < buf.length) {
          const { bytesWritten } = await a.fh!.write(buf, off, buf.length - off, a.size + off);
          off += bytesWritten;
        }
        await a.fh!.datasync();
        a.size += buf.length;
        a.seg.lastLsn = groupLast;
        this.bytesWritten += buf.length;
        this.syncedLsnValue = groupLast;
        this.release();
      }
    } catch (err) {
      this.failure = err instanceof Error ? err : new Error(String(err));
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w.reject(this.failure);
    } finally {
      this.writing = false;
    }
  }

  private release(): void {
    const synced = this.syncedLsnValue;
    if (this.waiters.length === 0) return;
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.lsn <= synced) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
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
    while (this.writing) await new Promise((r) => setImmediate(r));
    if (this.active) await this.active.fh!.close();
    this.active = undefined;
    releaseLock(this.lockFile);
  }
}

export { segmentName };
