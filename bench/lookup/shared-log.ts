/**
 * The design's counter-example, built honestly: a Kafka-style shared log. Messages for
 * every user are appended to a few partitions (one segment file each, chosen by a hash
 * of the recipient, as a keyed producer would). Appends are group-committed with one
 * fdatasync per partition per batch, like pobox's group commit. A reconnecting user's
 * pending messages can be anywhere in their partition, so a fetch reads the partition
 * sequentially with large buffered reads and keeps the records addressed to the user:
 * the comparison is on raw bytes, and only matches are decoded.
 *
 * Nothing is slowed artificially: same machine, same disk, same page cache as the lmdb
 * file (both are warm), no per-record syscalls, no JSON on the scan path.
 *
 * Record layout (little endian):
 *   u32 length of the rest | u8 userLen | user | u8 idLen | id | f64 sentAt | body
 */
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

export interface LogRecord {
  user: string;
  id: string;
  sentAt: number;
  body: string;
}

const READ_CHUNK = 8 * 1024 * 1024;

export function partitionOf(user: string, partitions: number): number {
  // FNV-1a: cheap and evenly spread, like a producer's key hash.
  let h = 0x811c9dc5;
  for (let i = 0; i < user.length; i++) {
    h ^= user.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}

export class SharedLog {
  private readonly fds: number[];
  private readonly files: string[];
  private readonly sizes: number[];
  private readonly readers: Array<FileHandle | undefined>;
  private readonly buf: Buffer;

  /** `readChunk` is the scan's read size (tests make it small to cross record boundaries). */
  constructor(
    dir: string,
    readonly partitions: number,
    opts: { readChunk?: number } = {},
  ) {
    this.buf = Buffer.allocUnsafe(opts.readChunk ?? READ_CHUNK);
    this.files = Array.from({ length: partitions }, (_, p) => path.join(dir, `partition-${p}.log`));
    this.fds = this.files.map((f) => openSync(f, 'a'));
    this.sizes = new Array<number>(partitions).fill(0);
    this.readers = new Array<FileHandle | undefined>(partitions).fill(undefined);
  }

  /** Bytes in each partition. */
  partitionBytes(): number[] {
    return [...this.sizes];
  }

  /** Append a batch durably: one write and one fdatasync per touched partition. */
  append(records: readonly LogRecord[]): void {
    const parts: Buffer[][] = Array.from({ length: this.partitions }, () => []);
    for (const r of records) parts[partitionOf(r.user, this.partitions)]!.push(encode(r));
    parts.forEach((bufs, p) => {
      if (bufs.length === 0) return;
      const chunk = Buffer.concat(bufs);
      let off = 0;
      while (off < chunk.length) off += writeSync(this.fds[p]!, chunk, off);
      fdatasyncSync(this.fds[p]!);
      this.sizes[p]! += chunk.length;
    });
  }

  /**
   * Every record addressed to `user`: a full sequential scan of the user's partition.
   * One scan at a time (the read buffer is shared), as the benchmark calls it.
   */
  async fetch(user: string): Promise<{ records: LogRecord[]; bytesScanned: number; recordsScanned: number }> {
    const p = partitionOf(user, this.partitions);
    const fh = (this.readers[p] ??= await open(this.files[p]!, 'r'));
    const size = this.sizes[p]!;
    const target = Buffer.from(user, 'latin1');
    const buf = this.buf;
    const out: LogRecord[] = [];
    let filePos = 0;
    let carry = 0;
    let recordsScanned = 0;
    while (filePos < size) {
      const { bytesRead } = await fh.read(buf, carry, Math.min(buf.length - carry, size - filePos), filePos);
      if (bytesRead === 0) break;
      filePos += bytesRead;
      const avail = carry + bytesRead;
      let pos = 0;
      while (pos + 4 <= avail) {
        const len = buf.readUInt32LE(pos);
        if (pos + 4 + len > avail) break;
        recordsScanned++;
        const userLen = buf[pos + 4]!;
        if (userLen === target.length && buf.compare(target, 0, userLen, pos + 5, pos + 5 + userLen) === 0) {
          out.push(decode(buf, pos + 4, len, user));
        }
        pos += 4 + len;
      }
      if (pos === 0 && avail === buf.length) throw new Error(`a record in partition ${p} is larger than the ${buf.length}-byte read buffer`);
      carry = avail - pos;
      if (carry > 0) buf.copyWithin(0, pos, avail);
    }
    return { records: out, bytesScanned: size, recordsScanned };
  }

  async close(): Promise<void> {
    for (const fd of this.fds) closeSync(fd);
    await Promise.all(this.readers.flatMap((r) => (r ? [r.close()] : [])));
  }
}

function encode(r: LogRecord): Buffer {
  const user = Buffer.from(r.user, 'latin1');
  const id = Buffer.from(r.id, 'latin1');
  const body = Buffer.from(r.body, 'utf8');
  const rest = 1 + user.length + 1 + id.length + 8 + body.length;
  const b = Buffer.allocUnsafe(4 + rest);
  let o = b.writeUInt32LE(rest, 0);
  o = b.writeUInt8(user.length, o);
  o += user.copy(b, o);
  o = b.writeUInt8(id.length, o);
  o += id.copy(b, o);
  o = b.writeDoubleLE(r.sentAt, o);
  body.copy(b, o);
  return b;
}

function decode(buf: Buffer, start: number, len: number, user: string): LogRecord {
  let o = start;
  const end = start + len;
  o += 1 + buf[o]!;
  const idLen = buf[o]!;
  const id = buf.toString('latin1', o + 1, o + 1 + idLen);
  o += 1 + idLen;
  const sentAt = buf.readDoubleLE(o);
  o += 8;
  return { user, id, sentAt, body: buf.toString('utf8', o, end) };
}
