/**
 * Wake-ups between gateway nodes. The store is the source of truth; the bus only tells
 * a node "user U has something new at seq S", so a lost or duplicated wake-up can delay
 * delivery (sessions also poll at a bounded interval while the bus is down) but never
 * lose or duplicate a message.
 */
import type { EphemeralMessage, StoredMessage } from '../core/types.js';

export interface Wake {
  user: string;
  epoch: string;
  seq: number;
  /** The message itself, as a fast path when small; receivers must still check seq continuity. */
  message?: StoredMessage;
  /**
   * An ephemeral message to hand to the user's connected devices (epoch and seq are then
   * meaningless: nothing was stored). Always carried whole, whatever its size.
   */
  ephemeral?: EphemeralMessage;
  /** The node that published it, so that node skips its own ephemeral (it delivered locally). */
  origin?: string;
  /** Set by a shared bus: where receiving nodes answer how many devices took an ephemeral. */
  reply?: { to: string; ref: string };
}

/** Returns true when it handed an ephemeral wake to a device (memory buses count these). */
export type WakeHandler = (wake: Wake) => void | boolean;

/** A wake-up that carries an ephemeral message. */
export const EPHEMERAL_EPOCH = '-';

export interface Bus {
  /** A short name for logs and metric labels. */
  readonly kind: string;
  /** Start receiving wake-ups for a user. Resolves once the subscription is active. Returns the unsubscribe function. */
  subscribe(user: string, handler: WakeHandler): Promise<() => Promise<void>>;
  /**
   * Tell every node holding `wake.user` that something new is stored (or hand them an
   * ephemeral message). For an ephemeral wake, resolves with how many receivers other
   * than `wake.origin` took it when the bus can tell (an in-process bus counts devices,
   * Redis counts subscribed nodes); undefined when it cannot.
   */
  publish(wake: Wake): Promise<number | void>;
  /** False while the bus cannot deliver wake-ups (sessions then poll the store). */
  healthy(): boolean;
  /** Called with the new health whenever it changes. */
  onHealth(fn: (healthy: boolean) => void): () => void;
  close(): Promise<void>;
}
