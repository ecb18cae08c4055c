/**
 * One script of store calls whose answers, errors and counters the worker tests compare
 * between an engine in process and the same engine in a worker thread: answers, every
 * kind of error a caller branches on (a refused item inside an append's outcomes too),
 * an error that is not a PoboxError, and the counters at the end.
 */
import { PoboxError } from '../../../src/core/errors.js';
import type { MailboxStore } from '../../../src/store/contract.js';

export const NOW = 1_800_000_000_000;
export const LIMITS = { maxMailboxMessages: 3, maxMailboxBytes: 1 << 20 };
export const item = (id: string, to = 'bob') => ({ id, from: 'alice', to, body: `body ${id}`, bytes: 6 + id.length, sentAt: NOW, expiresAt: NOW + 60_000 });

/** What an error says to a caller: its class, code, message and field. */
function said(err: unknown): unknown {
  if (err instanceof PoboxError) return { poboxError: true, code: err.code, message: err.message, field: err.field };
  return { poboxError: false, name: (err as Error).name, message: (err as Error).message };
}

async function outcome<T>(p: Promise<T>): Promise<{ ok: T } | { err: unknown }> {
  try {
    return { ok: await p };
  } catch (err) {
    return { err: said(err) };
  }
}

/** One script of calls whose answers and errors are compared between the two stores. */
export async function script(store: MailboxStore): Promise<unknown[]> {
  const out: unknown[] = [];
  out.push(await outcome(store.registerDevice('bob', 'phone', 'oldest', NOW, 2)));
  out.push(await outcome(store.registerDevice('bob', 'laptop', 'oldest', NOW, 2)));
  out.push(await outcome(store.registerDevice('bob', 'tablet', 'oldest', NOW, 2))); // FORBIDDEN: too many devices
  const appended = await store.append([item('m1'), item('m2'), item('m3'), item('m4'), item('m1')], LIMITS);
  // The refused item's error is a PoboxError on this side too; the rest of the batch is stored.
  out.push(appended.map((o) => (o.ok ? { ok: true, seq: o.seq, duplicate: o.duplicate } : { ok: false, error: said(o.error) })));
  out.push(await outcome(store.read({ user: 'bob', device: 'phone', afterSeq: 0, limit: 10, now: NOW })).then((r) => ('ok' in r ? { ...r, ok: { ...r.ok, epoch: 'x' } } : r)));
  out.push(await outcome(store.ack('bob', 'nobody', 1))); // NOT_FOUND
  out.push(await outcome(store.ack('bob', 'phone', 99))); // BAD_REQUEST, field upTo
  out.push(await outcome(store.ack('bob', 'phone', 2)));
  out.push(await outcome(store.ack('bob', 'laptop', 3)));
  out.push(await outcome(store.listDevices('bob')));
  out.push(await outcome(store.restore({ user: 'bob', epoch: 'e', lastSeq: 0, devices: [], messages: [] }))); // CONFLICT, field user
  out.push(await outcome(store.read(null as never))); // not a PoboxError: the engine's own TypeError
  out.push(await outcome(store.users()));
  out.push(store.counters());
  return out;
}
