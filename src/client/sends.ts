/**
 * Sends waiting for their `accepted` frame. Each keeps its frame so it can be written
 * again, with the same id, on the next connection: the server dedupes on the id, so a
 * send whose reply was lost resolves with the original seq and `duplicate: true`.
 */
import { PoboxError } from '../core/errors.js';
import type { SendFrame } from '../core/protocol.js';
import type { SendReceipt } from './types.js';

interface PendingSend {
  frame: SendFrame;
  /** Serialized once (JSON text or MessagePack bytes): the same bytes go out on every (re)send. */
  data: string | Uint8Array;
  promise: Promise<SendReceipt>;
  resolve: (receipt: SendReceipt) => void;
  reject: (err: PoboxError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** The connection it was last written on (0: not yet written). */
  writtenOn: number;
}

export class PendingSends {
  private readonly pending = new Map<string, PendingSend>();

  get size(): number {
    return this.pending.size;
  }

  /** Register a send. A send with an id that is already pending shares its promise. */
  add(frame: SendFrame, timeoutMs: number, encode: (frame: SendFrame) => string | Uint8Array = (f) => JSON.stringify(f)): { promise: Promise<SendReceipt>; isNew: boolean } {
    const existing = this.pending.get(frame.id);
    if (existing) return { promise: existing.promise, isNew: false };
    let resolve!: (r: SendReceipt) => void;
    let reject!: (e: PoboxError) => void;
    const promise = new Promise<SendReceipt>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const entry: PendingSend = { frame, data: encode(frame), promise, resolve, reject, timer: undefined, writtenOn: 0 };
    if (timeoutMs > 0) {
      entry.timer = setTimeout(() => {
        this.settle(frame.id)?.reject(
          new PoboxError('UNAVAILABLE', `send ${frame.id} was not accepted within ${timeoutMs} ms; it may still arrive, resend with the same id to find out`),
        );
      }, timeoutMs);
    }
    this.pending.set(frame.id, entry);
    return { promise, isNew: true };
  }

  /** Frames to write on connection `conn`, in the order they were sent; marks them written. */
  toWrite(conn: number): Array<string | Uint8Array> {
    const out: Array<string | Uint8Array> = [];
    for (const entry of this.pending.values()) {
      if (entry.writtenOn === conn) continue;
      entry.writtenOn = conn;
      out.push(entry.data);
    }
    return out;
  }

  markWritten(id: string, conn: number): void {
    const entry = this.pending.get(id);
    if (entry) entry.writtenOn = conn;
  }

  dataOf(id: string): string | Uint8Array | undefined {
    return this.pending.get(id)?.data;
  }

  /** `extra` carries `reached` for an ephemeral send (devices it was handed to), `results` for a group send. */
  accepted(id: string, seq: number, duplicate: boolean, extra: Pick<SendReceipt, 'reached' | 'results'> = {}): boolean {
    const entry = this.settle(id);
    if (!entry) return false;
    entry.resolve({ id, seq, duplicate, ...extra });
    return true;
  }

  failed(id: string, err: PoboxError): boolean {
    const entry = this.settle(id);
    if (!entry) return false;
    entry.reject(err);
    return true;
  }

  /**
   * The id of the largest send written on `conn`: the likely cause when the server closes
   * a connection because a frame was too big (it cannot say which one).
   */
  largestWrittenOn(conn: number): string | undefined {
    let best: PendingSend | undefined;
    for (const entry of this.pending.values()) {
      if (entry.writtenOn === conn && (!best || entry.data.length > best.data.length)) best = entry;
    }
    return best?.frame.id;
  }

  rejectAll(err: PoboxError): void {
    for (const id of [...this.pending.keys()]) this.failed(id, err);
  }

  private settle(id: string): PendingSend | undefined {
    const entry = this.pending.get(id);
    if (!entry) return undefined;
    this.pending.delete(id);
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    return entry;
  }
}
