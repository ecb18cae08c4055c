/**
 * A Bus that measures how long a publish takes to be accepted, and how long after a
 * message was stamped its wake-up reaches a subscriber on this node. Only wake-ups that
 * carry the message have a send time; across nodes the figure assumes synced clocks.
 */
import type { Bus } from '../bus/contract.js';
import type { PoboxMetrics } from './metrics.js';

export function instrumentBus(bus: Bus, metrics: PoboxMetrics, now: () => number = Date.now): Bus {
  const labels = { bus: bus.kind };
  return {
    kind: bus.kind,
    subscribe: (user, handler) =>
      bus.subscribe(user, (wake) => {
        if (wake.message) metrics.busWakeSeconds.observe(labels, Math.max(0, now() - wake.message.sentAt) / 1000);
        return handler(wake);
      }),
    // Timed beside the bus's own promise (no async wrapper, no startTimer closures): every
    // stored message publishes one wake-up.
    publish: (wake) => {
      const t0 = performance.now();
      const done = (): void => metrics.busPublishSeconds.observe(labels, (performance.now() - t0) / 1000);
      let publishing: ReturnType<Bus['publish']>;
      try {
        publishing = bus.publish(wake);
      } catch (err) {
        done();
        return Promise.reject(err as Error);
      }
      publishing.then(done, done);
      return publishing;
    },
    healthy: () => bus.healthy(),
    onHealth: (fn) => bus.onHealth(fn),
    close: () => bus.close(),
  };
}
