import type { DeviceId, Seq, UserId } from '../core/ids.js';
import type { StoredMessage } from '../core/types.js';

/** In-process change events of a post office. Delivery sessions and metrics listen here. */
export interface PostOfficeEvents {
  /** A new message is durable in `user`'s mailbox (duplicates are not announced). */
  stored: { user: UserId; epoch: string; message: StoredMessage };
  /** A device's cursor moved; `deleted` messages were removed because every device had acked them. */
  acked: { user: UserId; device: DeviceId; cursor: Seq; deleted: number; deletedBytes: number };
  /** A send was refused (quota, size, bad input, ...). */
  rejected: { code: string; to?: UserId };
  /** The sweeper removed expired messages. */
  expired: { count: number; bytes: number };
  /** Messages removed outside of acks: purge or device removal. */
  removed: { user: UserId; count: number; bytes: number; reason: 'purge' | 'device-removed' };
  device: { user: UserId; device: DeviceId; change: 'registered' | 'removed' };
}

type Listener<T> = (event: T) => void;

/** A small typed emitter; a throwing listener never breaks the emitter's caller. */
export class TypedEvents<E> {
  private readonly listeners = new Map<keyof E, Set<Listener<never>>>();

  constructor(private readonly onListenerError: (err: unknown) => void = (err) => process.emitWarning(`pobox event listener threw: ${String(err)}`)) {}

  on<K extends keyof E>(type: K, fn: Listener<E[K]>): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(fn as Listener<never>);
    return () => {
      set.delete(fn as Listener<never>);
    };
  }

  emit<K extends keyof E>(type: K, event: E[K]): void {
    const set = this.listeners.get(type);
    if (!set) return;
    for (const fn of set) {
      try {
        (fn as Listener<E[K]>)(event);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  }

  listenerCount(type: keyof E): number {
    return this.listeners.get(type)?.size ?? 0;
  }
}
