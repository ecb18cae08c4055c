/**
 * The worker thread of a WorkerStore (host.ts): opens the engine named in workerData,
 * answers `ready`, then runs every call it is posted against that engine and posts the
 * answer back (protocol.ts). It holds no state of its own: the engine's decisions stay on
 * this one thread, which is what keeps them authoritative (src/store/lmdb/index.ts).
 *
 * Loaded by URL, never imported: as entry.ts under `node --import tsx` (tests, benches;
 * the worker inherits the parent's --import), as entry.js from dist/ (bin/pobox.js).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PoboxError } from '../../core/errors.js';
import type { MailboxStore, StoreCapacity } from '../contract.js';
import { openStore } from '../open.js';
import { answeredCommitLeak } from '../lmdb/commit-leak.js';
import { K_BACKGROUND, K_ERR, K_OK, K_READY, K_STATE, K_WAL, outcomesToWire, toWire, type Answer, type Call, type Kind, type ReadyInfo, type WalEvent } from './protocol.js';
import type { WorkerTarget } from './host.js';

/** Background work (lmdb's apply, DynamoDB's deferred deletes) moves counters between calls: tell the host this often. */
const STATE_EVERY_MS = 1000;

const port = parentPort;
if (!port) throw new Error('src/store/worker/entry.ts runs only as a worker thread (see host.ts)');
const { target } = workerData as { target: WorkerTarget };

// The thread's own crash-only rule: an unhandled rejection ends it (the host then fails
// every call and `serve` exits), except lmdb-js's leaked promise of a failed commit the
// engine has answered to its caller (commit-leak.ts), after which the engine recovers in
// place here as it does in process.
process.on('unhandledRejection', (err) => {
  if (answeredCommitLeak(err) === undefined) throw err;
});

let store: MailboxStore | undefined;
let capacity: (() => StoreCapacity) | undefined;
/** The numeric fields of the engine's capacity(), in the order every answer carries them. */
let capacityKeys: string[] = [];

function post(kind: Kind, id: number, payload: unknown): void {
  const c = store ? store.counters() : { keysRead: 0, keysWritten: 0, keysDeleted: 0 };
  const a: Answer = [kind, id, payload, c.keysRead, c.keysWritten, c.keysDeleted];
  if (capacity) {
    const u = capacity() as unknown as Record<string, number>;
    for (const k of capacityKeys) a.push(u[k]!);
  }
  port!.postMessage(a);
}

async function open(): Promise<MailboxStore> {
  if ('config' in target) return openStore({ ...target.config, worker: false });
  const { openLmdbStore } = await import('../lmdb/index.js');
  const { walEvents, ...opts } = target.lmdb;
  const onEvent = walEvents ? (e: WalEvent) => post(K_WAL, 0, e) : undefined;
  return openLmdbStore({ ...opts, ...(onEvent ? { wal: { ...opts.wal, onEvent } } : {}) });
}

async function main(): Promise<void> {
  let s: MailboxStore;
  try {
    s = store = await open();
  } catch (err) {
    // The host terminates us on this answer; with nothing listening, the thread ends anyway.
    post(K_ERR, 0, toWire(err));
    return;
  }
  if (s.capacity) {
    capacity = () => s.capacity!();
    capacityKeys = Object.entries(capacity())
      .filter(([, v]) => typeof v === 'number')
      .map(([k]) => k);
  }
  s.onBackgroundFailure?.((err) => post(K_BACKGROUND, 0, toWire(err)));
  const ticker = setInterval(() => post(K_STATE, 0, null), STATE_EVERY_MS);
  ticker.unref();
  const methods = s as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;

  port!.on('message', (call: Call) => {
    const [id, method, args] = call;
    let running: Promise<unknown>;
    try {
      if (method === 'close') clearInterval(ticker);
      running = methods[method]!.apply(s, args);
    } catch (err) {
      running = Promise.reject(err);
    }
    running.then(
      (value) => {
        try {
          post(K_OK, id, method === 'append' ? outcomesToWire(value as Parameters<typeof outcomesToWire>[0]) : value);
        } catch (err) {
          // An answer structured clone cannot copy is a bug of this wrapper, not of the caller.
          post(K_ERR, id, toWire(new PoboxError('INTERNAL', `store worker could not send the answer of ${method}: ${(err as Error).message}`)));
        }
      },
      (err: unknown) => post(K_ERR, id, toWire(err)),
    );
  });

  const info: ReadyInfo = { engine: s.engine, capabilities: s.capabilities, ...(capacity ? { capacityKeys } : {}) };
  post(K_READY, 0, info);
}

await main();
