/**
 * A MailboxStore that times every call of the store it wraps, labelled by engine,
 * operation and outcome. It changes nothing else: same engine name, same capabilities,
 * same results and errors, so the post office cannot tell it is there.
 */
import type { MailboxStore } from '../store/contract.js';
import type { PoboxMetrics } from './metrics.js';

type AsyncOp = 'append' | 'read' | 'ack' | 'registerDevice' | 'removeDevice' | 'listDevices' | 'stats' | 'purge' | 'sweep' | 'users' | 'exportPage' | 'restore';

export function instrumentStore(store: MailboxStore, metrics: PoboxMetrics): MailboxStore {
  const engine = store.engine;
  const histogram = metrics.storeSeconds;
  // Not an async wrapper around prom-client's startTimer: the store's own promise is handed
  // back and timed on the side, with label objects made once per operation (every store
  // call of every connection passes here).
  const timed = <A extends unknown[], R>(op: AsyncOp, fn: (...args: A) => Promise<R>): ((...args: A) => Promise<R>) => {
    const ok = { engine, op, outcome: 'ok' };
    const failed = { engine, op, outcome: 'error' };
    return (...args: A): Promise<R> => {
      const t0 = performance.now();
      let running: Promise<R>;
      try {
        running = fn.apply(store, args);
      } catch (err) {
        histogram.observe(failed, (performance.now() - t0) / 1000);
        return Promise.reject(err as Error);
      }
      running.then(
        () => histogram.observe(ok, (performance.now() - t0) / 1000),
        () => histogram.observe(failed, (performance.now() - t0) / 1000),
      );
      return running;
    };
  };
  return {
    engine,
    capabilities: store.capabilities,
    append: timed('append', store.append),
    read: timed('read', store.read),
    readIfRegistered: timed('read', store.readIfRegistered),
    ack: timed('ack', store.ack),
    registerDevice: timed('registerDevice', store.registerDevice),
    removeDevice: timed('removeDevice', store.removeDevice),
    listDevices: timed('listDevices', store.listDevices),
    stats: timed('stats', store.stats),
    purge: timed('purge', store.purge),
    sweep: timed('sweep', store.sweep),
    users: timed('users', store.users),
    exportPage: timed('exportPage', store.exportPage),
    restore: timed('restore', store.restore),
    counters: () => store.counters(),
    close: () => store.close(),
    ...(store.onBackgroundFailure ? { onBackgroundFailure: (listener: (err: unknown) => void) => store.onBackgroundFailure!(listener) } : {}),
  };
}
