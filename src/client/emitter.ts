/**
 * A tiny typed event emitter that runs in browsers and Node alike (no `events` import).
 * Listeners may return a promise; `emit` hands back what they returned so the client can
 * wait for the application's message handlers before it acks.
 */
export type Listener<T> = (payload: T) => unknown;

export class TypedEmitter<Events> {
  private readonly listeners = new Map<keyof Events, Listener<never>[]>();

  /** @param onListenerError receives what a listener threw, so one bad listener never breaks delivery. */
  constructor(private readonly onListenerError: (err: unknown, event: keyof Events) => void) {}

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

  /** Call every listener; returns the promises they returned (empty when all were synchronous). */
  emit<K extends keyof Events>(event: K, payload: Events[K]): Promise<unknown>[] {
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
