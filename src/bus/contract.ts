/**
 * Wake-ups between gateway nodes. The store is the source of truth; the bus only tells
 * a node "user U has something new at seq S", so a lost or duplicated wake-up can delay
 * delivery (sessions also poll at a bounded interval while the bus is down) but never
 * lose or duplicate a message.
 */
import type { StoredMessage } from '../core/types.js';

export interface Wake {
  user: string;
  epoch: string;
  seq: number;
  /** The message itself, as a fast path when small; receivers must still check seq continuity. */
  message?: StoredMessage;
}

export type WakeHandler = (wake: Wake) => void;

export interface Bus {
  /** A short name for logs and metric labels. */
  readonly kind: string;
  /** Start receiving wake-ups for a user. Resolves once the subscription is active. Returns the unsubscribe function. */
  subscribe(user: string, handler: WakeHandler): Promise<() => Promise<void>>;
  /** Tell every node holding `wake.user` that something new is stored. */
  publish(wake: Wake): Promise<void>;
  /** False while the bus cannot deliver wake-ups (sessions then poll the store). */
  healthy(): boolean;
  /** Called with the new health whenever it changes. */
  onHealth(fn: (healthy: boolean) => void): () => void;
  close(): Promise<void>;
}
