/**
 * The wire between a WorkerStore (host.ts, on the caller's thread) and the engine it runs
 * in a worker thread (entry.ts). Everything crosses by structured clone, one postMessage
 * per call and one per answer: the post office already group-commits a tick's sends into
 * one `append`, so a call is never split or merged here.
 *
 * Calls, host -> worker: `[id, method, args]` (id >= 1; method a MailboxStore method name).
 * Answers and notices, worker -> host, flat arrays (they clone faster than objects):
 *   [kind, id, payload, keysRead, keysWritten, keysDeleted, ...capacity]
 * `kind` says what it is (below). Every one of them carries the engine's counters (and,
 * when the engine meters its backing service, the values of its capacity() in the order
 * of `capacityKeys` from the ready answer) as they were when it was posted, so the host's
 * synchronous counters() / capacity() are exact right after any call resolved.
 *
 * Structured clone, not msgpackr, and a choice measured: a round trip of a 500-item append
 * (items there, outcomes back) cost 2.5-3.1 us of CPU per item by structured clone and
 * 1.4-1.6 us packed with msgpackr records, but at 50 items msgpackr was no cheaper (its
 * record definitions travel with every message), and in the gateway's profile with the
 * worker, postMessage was 3.6% of the main thread's busy time: not worth a codec of our
 * own on both sides. Revisit if it grows.
 *
 * Errors cross as plain objects: a PoboxError keeps its code, message and field (callers
 * branch on codes); anything else keeps its name and message. The `cause` and stack stay
 * in the worker.
 */
import { isErrorCode, PoboxError } from '../../core/errors.js';
import type { WalEvent } from '../lmdb/index.js';
import type { AppendOutcome, StoreCapabilities, StoreCounters } from '../contract.js';

/** A call's answer. */
export const K_OK = 0;
/** A call failed (payload: WireError); with id 0 before `ready`: the engine did not open. */
export const K_ERR = 1;
/** The engine reported a background failure (payload: WireError). */
export const K_BACKGROUND = 2;
/** Counters only (sent now and then: background work moves them between calls). */
export const K_STATE = 3;
/** The embedded engine's apply cycle moved (payload: WalEvent), when asked for. */
export const K_WAL = 4;
/** The engine is open (payload: ReadyInfo). */
export const K_READY = 5;

export type Kind = typeof K_OK | typeof K_ERR | typeof K_BACKGROUND | typeof K_STATE | typeof K_WAL | typeof K_READY;

export type Call = [id: number, method: string, args: unknown[]];

export type Answer = [
  kind: Kind,
  id: number,
  payload: unknown,
  keysRead: number,
  keysWritten: number,
  keysDeleted: number,
  readUnits?: number,
  writeUnits?: number,
  requests?: number,
];

export interface ReadyInfo {
  engine: string;
  capabilities: StoreCapabilities;
  /** The engine meters its backing service: the fields of its capacity(), in the order answers carry them. */
  capacityKeys?: string[];
}

export type { WalEvent };

export type WireError = { code: string; message: string; field?: string } | { name: string; message: string };

export function toWire(err: unknown): WireError {
  if (err instanceof PoboxError) return err.field === undefined ? { code: err.code, message: err.message } : { code: err.code, message: err.message, field: err.field };
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: 'Error', message: String(err) };
}

export function fromWire(w: WireError): Error {
  if ('code' in w && isErrorCode(w.code)) return new PoboxError(w.code, w.message, w.field === undefined ? undefined : { field: w.field });
  const e = new Error(w.message);
  if ('name' in w) e.name = w.name;
  return e;
}

/** Append outcomes carry a PoboxError per refused item: those cross as WireErrors, in place. */
export function outcomesToWire(outcomes: AppendOutcome[]): unknown[] {
  const out = outcomes as unknown as Array<{ ok: boolean; error?: unknown }>;
  for (const o of out) if (!o.ok) o.error = toWire(o.error);
  return out;
}

export function outcomesFromWire(wire: unknown[]): AppendOutcome[] {
  const out = wire as Array<{ ok: boolean; error?: unknown }>;
  for (const o of out) if (!o.ok) o.error = fromWire(o.error as WireError);
  return out as unknown as AppendOutcome[];
}

/** Fill `counters` (and `capacity`, by `keys`) from an answer's tail. */
export function readState(a: Answer, counters: StoreCounters, capacity?: Record<string, number>, keys?: readonly string[]): void {
  counters.keysRead = a[3];
  counters.keysWritten = a[4];
  counters.keysDeleted = a[5];
  if (capacity && keys) for (let i = 0; i < keys.length && 6 + i < a.length; i++) capacity[keys[i]!] = a[6 + i] as number;
}
