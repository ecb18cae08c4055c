import type { Bus, Wake, WakeHandler } from './contract.js';

/** The single-node bus: wake-ups stay inside this process. Always healthy. */
export class MemoryBus implements Bus {
  readonly kind = 'memory';
  private readonly subs = new Map<string, Set<WakeHandler>>();

  async subscribe(user: string, handler: WakeHandler): Promise<() => Promise<void>> {
    let set = this.subs.get(user);
    if (!set) this.subs.set(user, (set = new Set()));
    set.add(handler);
    return async () => {
      set.delete(handler);
      if (set.size === 0 && this.subs.get(user) === set) this.subs.delete(user);
    };
  }

  async publish(wake: Wake): Promise<number> {
    const set = this.subs.get(wake.user);
    if (!set) return 0;
    let took = 0;
    for (const h of [...set]) if (h(wake) === true) took++;
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
