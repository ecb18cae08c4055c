/**
 * Message bodies for the crash test, derived from the message id, so the parent can
 * check a stored body byte for byte without the writer having to send it back.
 * Lengths vary from 1 byte to a few KiB and include multi-byte characters.
 */
import { createHash } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789 éü€😀';

export function bodyFor(id: string): string {
  const h = createHash('sha256').update(id).digest();
  const len = 1 + (h.readUInt16BE(0) % (h[2]! < 16 ? 4096 : 256));
  const chars = [...ALPHABET];
  let out = `${id}|`;
  for (let i = 0; out.length < len; i++) out += chars[h[i % 32]! % chars.length]!;
  return out;
}
