import type { Bus, Wake, WakeHandler } from './contract.js';

/** The single-node bus: wake-ups stay inside this process. Always healthy. */
export class MemoryBus implements Bus {
  readonly kind = 'memory';
  /** A user's handlers: the handler itself while it is the only one (most users), else a set. */
  private readonly subs = new Map<string, WakeHandler | Set<WakeHandler>>();

  async subscribe(user: string, handler: WakeHandler): Promise<() => Promise<void>> {
    const had = this.subs.get(user);
    if (had === undefined) this.subs.set(user, handler);
    else if (had instanceof Set) had.add(handler);
    else this.subs.set(user, new Set([had, handler]));
    return () => this.unsubscribe(user, handler);
  }

  private async unsubscribe(user: string, handler: WakeHandler): Promise<void> {
    const had = this.subs.get(user);
    if (had === handler) this.subs.delete(user);
    else if (had instanceof Set) {
      had.delete(handler);
      if (had.size === 1) this.subs.set(user, had.values().next().value!);
    }
  }

  async publish(wake: Wake): Promise<number> {
    const had = this.subs.get(wake.user);
    if (had === undefined) return 0;
    if (!(had instanceof Set)) return had(wake) === true ? 1 : 0;
    let took = 0;
    for (const h of [...had]) if (h(wake) === true) took++;
    return took;
  }

  healthy(): boolean {
    return true;
  }

  onHealth(): () => void {
    return () => undefined;
  }

  async close(): Promise<void> {
    this.subs.clear();
  }
}
