/**
 * The one typed event emitter of pobox: the post office's change events, the gateway's
 * events and the client SDK's events all use it. It runs in browsers and Node alike (no
 * `events` import). A listener that throws, or returns a promise that rejects, never
 * breaks the emitting code: what it threw goes to `onListenerError`.
 */
export type Listener<T> = (payload: T) => unknown;

export type ListenerErrorHandler<Events> = (err: unknown, event: keyof Events) => void;

const warn = (err: unknown): void => process.emitWarning(`pobox event listener threw: ${String(err)}`);

export class TypedEmitter<Events> {
  private readonly listeners = new Map<keyof Events, Listener<never>[]>();

  constructor(private readonly onListenerError: ListenerErrorHandler<Events> = warn) {}

  /** Subscribe; returns a function that unsubscribes. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    const list = this.listeners.get(event) ?? [];
    // Copy on write: a listener that unsubscribes during emit does not disturb the loop.
    this.listeners.set(event, [...list, listener as Listener<never>]);
    return () => this.off(event, listener);
  }

  /** Subscribe for one call only. */
  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    const off = this.on(event, (payload) => {
      off();
      return listener(payload);
    });
    return off;
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    const list = this.listeners.get(event);
    if (!list) return;
    const next = list.filter((l) => l !== listener);
    if (next.length === 0) this.listeners.delete(event);
    else this.listeners.set(event, next);
  }

  listenerCount(event: keyof Events): number {
    return this.listeners.get(event)?.length ?? 0;
  }

  /** Call every listener; a promise a listener returns is not waited for, its failure is reported. */
  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    // Not through emitAndCollect: no array per emit (the gateway emits several per message and connection).
    const list = this.listeners.get(event);
    if (!list) return;
    for (const listener of list) {
      try {
        const result = (listener as Listener<Events[K]>)(payload);
        if (isThenable(result)) Promise.resolve(result).catch((err: unknown) => this.onListenerError(err, event));
      } catch (err) {
        this.onListenerError(err, event);
      }
    }
  }

  /**
   * Call every listener and hand back the promises they returned (empty when all were
   * synchronous), for a caller that waits for them: the client acks a message only after
   * the application's handlers finished.
   */
  emitAndCollect<K extends keyof Events>(event: K, payload: Events[K]): Promise<unknown>[] {
    const list = this.listeners.get(event);
    if (!list) return [];
    const pending: Promise<unknown>[] = [];
    for (const listener of list) {
      try {
        const result = (listener as Listener<Events[K]>)(payload);
        if (isThenable(result)) pending.push(Promise.resolve(result));
      } catch (err) {
        this.onListenerError(err, event);
      }
    }
    return pending;
  }

  removeAll(): void {
    this.listeners.clear();
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
