/**
 * One write-ahead log record, framed so recovery can tell a whole record from a torn or
 * damaged one without trusting anything it has not checked:
 *
 *   offset 0   u32 LE  payload length
 *   offset 4   u32 LE  crc32 of bytes 8 .. 16+length (lsn, type, reserved byte, payload)
 *   offset 8   u48 LE  lsn: the record's position in the log, +1 per record, never reused
 *   offset 14  u8      type (what the payload means is up to the caller)
 *   offset 15  u8      0 (reserved)
 *   offset 16  payload
 *
 * The length is outside the checksum (it says how much to check), so a damaged length is
 * caught either because it points past the end of the file (torn) or because the bytes it
 * covers fail the checksum. crc32 catches every single-bit and every burst error up to 32
 * bits, which is what a torn sector tail or a flipped bit looks like.
 */
import { crc32 } from 'node:zlib';

export const HEADER_BYTES = 16;
/** Larger lengths are damage, not data: no batch we write comes near this. */
export const MAX_PAYLOAD_BYTES = 256 * 1024 * 1024;
const MAX_LSN = 2 ** 48 - 1;

export interface WalRecord {
  lsn: number;
  type: number;
  payload: Buffer;
}

export function encodeRecord(lsn: number, type: number, payload: Uint8Array): Buffer {
  if (!Number.isInteger(lsn) || lsn < 1 || lsn > MAX_LSN) throw new RangeError(`lsn out of range: ${lsn}`);
  if (!Number.isInteger(type) || type < 0 || type > 255) throw new RangeError(`record type out of range: ${type}`);
  if (payload.length > MAX_PAYLOAD_BYTES) throw new RangeError(`record payload too large: ${payload.length}`);
  const buf = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  buf.writeUInt32LE(payload.length, 0);
  buf.writeUIntLE(lsn, 8, 6);
  buf[14] = type;
  buf[15] = 0;
  buf.set(payload, HEADER_BYTES);
  buf.writeUInt32LE(crc32(buf.subarray(8)), 4);
  return buf;
}

/**
 * What is at `offset`: a whole record, the clean end of the data, or the reason to stop.
 * `torn`: the bytes end inside a record (a write cut short). `corrupt`: the bytes are all
 * there but fail the checks. Either way nothing at or after `offset` may be trusted.
 */
export type DecodeResult = { kind: 'record'; record: WalRecord; next: number } | { kind: 'end' } | { kind: 'torn' } | { kind: 'corrupt'; reason: string };

export function decodeRecord(buf: Uint8Array, offset: number): DecodeResult {
  const remaining = buf.length - offset;
  if (remaining === 0) return { kind: 'end' };
  if (remaining < HEADER_BYTES) return { kind: 'torn' };
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const length = view.readUInt32LE(offset);
  if (length > MAX_PAYLOAD_BYTES) return { kind: 'corrupt', reason: `length ${length} is implausible` };
  if (remaining < HEADER_BYTES + length) return { kind: 'torn' };
  const crc = view.readUInt32LE(offset + 4);
  if (crc32(view.subarray(offset + 8, offset + HEADER_BYTES + length)) !== crc) return { kind: 'corrupt', reason: 'checksum mismatch' };
  if (view[offset + 15] !== 0) return { kind: 'corrupt', reason: 'reserved byte set' };
  const lsn = view.readUIntLE(offset + 8, 6);
  if (lsn < 1) return { kind: 'corrupt', reason: 'lsn 0' };
  return {
    kind: 'record',
    record: { lsn, type: view[offset + 14]!, payload: view.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length) },
    next: offset + HEADER_BYTES + length,
  };
}

/**
 * Every trustworthy record from the start of `buf`, in order, and where they stop.
 * Records must carry consecutive lsns starting at `firstLsn` (when given): a record
 * with another lsn is stale data, not the continuation of this log.
 */
export function decodeAll(buf: Uint8Array, firstLsn?: number): { records: WalRecord[]; validBytes: number; stop: DecodeResult['kind'] | 'gap' } {
  const records: WalRecord[] = [];
  let offset = 0;
  let expected = firstLsn;
  for (;;) {
    const r = decodeRecord(buf, offset);
    if (r.kind !== 'record') return { records, validBytes: offset, stop: r.kind };
    if (expected !== undefined && r.record.lsn !== expected) return { records, validBytes: offset, stop: 'gap' };
    records.push(r.record);
    expected = r.record.lsn + 1;
    offset = r.next;
  }
}
