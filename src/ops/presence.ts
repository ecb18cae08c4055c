/**
 * Which devices have a live session on this node, kept from the gateway's connection
 * and disconnect events. Counted per device, because a reconnecting device's new
 * connection is announced before the old one's disconnect.
 *
 * Node-local: with several gateway nodes, a user connected elsewhere looks offline here
 * (docs/operations.md says what that means for the wake-up hook).
 */
import type { DeviceId, UserId } from '../core/ids.js';
import type { TypedEmitter } from '../core/emitter.js';
import type { Presence } from '../postoffice/wakeup-hook.js';
import type { GatewayEvents } from '../gateway/events.js';

export class LocalPresence implements Presence {
  private readonly users = new Map<UserId, Map<DeviceId, number>>();

  /** Follow a gateway's events. Returns the function that stops following. */
  follow(events: TypedEmitter<GatewayEvents>): () => void {
    const offs = [events.on('connection', (e) => this.up(e.user, e.device)), events.on('disconnect', (e) => this.down(e.user, e.device))];
    return () => offs.forEach((f) => f());
  }

  up(user: UserId, device: DeviceId): void {
    let devices = this.users.get(user);
    if (!devices) this.users.set(user, (devices = new Map()));
    devices.set(device, (devices.get(device) ?? 0) + 1);
  }

  down(user: UserId, device: DeviceId): void {
    const devices = this.users.get(user);
    const n = devices?.get(device);
    if (!devices || n === undefined) return;
    if (n > 1) devices.set(device, n - 1);
    else {
      devices.delete(device);
      if (devices.size === 0) this.users.delete(user);
    }
  }

  connectedDevices(user: UserId): readonly DeviceId[] {
    const devices = this.users.get(user);
    return devices ? [...devices.keys()] : [];
  }

  /** Every connected (user, devices) pair on this node. */
  *entries(): IterableIterator<[UserId, DeviceId[]]> {
    for (const [user, devices] of this.users) yield [user, [...devices.keys()]];
  }

  /** Users with at least one connected device. */
  get onlineUsers(): number {
    return this.users.size;
  }
}
