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
  /** A user's sessions on this node: the session itself while it is the only one (most users), else a set. */
  private readonly byUser = new Map<string, DeviceSession | Set<DeviceSession>>();

  constructor(private readonly bus: Bus) {}

  add(s: DeviceSession): void {
    const had = this.byUser.get(s.user);
    if (had === undefined) this.byUser.set(s.user, s);
    else if (had instanceof Set) had.add(s);
    else if (had !== s) this.byUser.set(s.user, new Set([had, s]));
  }

  remove(s: DeviceSession): void {
    const had = this.byUser.get(s.user);
    if (had === s) this.byUser.delete(s.user);
    else if (had instanceof Set) {
      had.delete(s);
      if (had.size === 1) this.byUser.set(s.user, had.values().next().value!);
    }
  }

  /** Deliver to local sessions and publish for the other nodes; resolves with the reach. */
  readonly route = async (m: EphemeralMessage): Promise<number> => {
    let local = 0;
    const had = this.byUser.get(m.to);
    for (const s of had === undefined ? [] : had instanceof Set ? [...had] : [had]) if (s.deliverEphemeral(m)) local++;
    let remote = 0;
    try {
      remote = (await this.bus.publish({ user: m.to, epoch: EPHEMERAL_EPOCH, seq: 0, ephemeral: m, origin: this.nodeId })) ?? 0;
    } catch {
      // A bus outage only narrows an ephemeral message to this node's devices.
    }
    return local + remote;
  };
}
