/**
 * Ephemeral delivery for one gateway node: typing, presence, "read up to". Nothing is
 * stored; a message goes to the recipient's sessions on this node directly and, through
 * the bus, to the other nodes that hold the user.
 *
 * What `reached` means: the devices of this node that took it, plus what the bus reports
 * for the other nodes. The in-process bus counts their devices as it calls them; the
 * Redis bus has every receiving node answer with its count and waits for as many answers
 * as PUBLISH counted receivers, at most `reachTimeoutMs` (src/bus/reach-replies.ts). So
 * the figure is exact, or a lower bound when a node answered too late or the bus was down.
 */
import { randomUUID } from 'node:crypto';
import { EPHEMERAL_EPOCH, type Bus } from '../bus/contract.js';
import type { EphemeralMessage } from '../core/types.js';
import type { DeviceSession } from './session.js';

export class EphemeralRouter {
  /** This node's id on the bus. */
  readonly nodeId = randomUUID();
  private readonly byUser = new Map<string, Set<DeviceSession>>();

  constructor(private readonly bus: Bus) {}

  add(s: DeviceSession): void {
    let set = this.byUser.get(s.user);
    if (!set) this.byUser.set(s.user, (set = new Set()));
    set.add(s);
  }

  remove(s: DeviceSession): void {
    const set = this.byUser.get(s.user);
    if (!set) return;
    set.delete(s);
    if (set.size === 0) this.byUser.delete(s.user);
  }

  /** Deliver to local sessions and publish for the other nodes; resolves with the reach. */
  readonly route = async (m: EphemeralMessage): Promise<number> => {
    let local = 0;
    for (const s of this.byUser.get(m.to) ?? []) if (s.deliverEphemeral(m)) local++;
    let remote = 0;
    try {
      remote = (await this.bus.publish({ user: m.to, epoch: EPHEMERAL_EPOCH, seq: 0, ephemeral: m, origin: this.nodeId })) ?? 0;
    } catch {
      // A bus outage only narrows an ephemeral message to this node's devices.
    }
    return local + remote;
  };
}
