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
  const timed =
    <A extends unknown[], R>(op: AsyncOp, fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const end = metrics.storeSeconds.startTimer({ engine, op });
      try {
        const r = await fn.apply(store, args);
        end({ outcome: 'ok' });
        return r;
      } catch (err) {
        end({ outcome: 'error' });
        throw err;
      }
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
