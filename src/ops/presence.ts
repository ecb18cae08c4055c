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
  /**
   * Connections per user and device. A user with one device connected once (most of them)
   * is held as just that device's id; a Map per user cost about 130 bytes per connection.
   */
  private readonly users = new Map<UserId, DeviceId | Map<DeviceId, number>>();

  /** Follow a gateway's events. Returns the function that stops following. */
  follow(events: TypedEmitter<GatewayEvents>): () => void {
    const offs = [events.on('connection', (e) => this.up(e.user, e.device)), events.on('disconnect', (e) => this.down(e.user, e.device))];
    return () => offs.forEach((f) => f());
  }

  up(user: UserId, device: DeviceId): void {
    const had = this.users.get(user);
    if (had === undefined) this.users.set(user, device);
    else if (typeof had === 'string')
      this.users.set(
        user,
        had === device
          ? new Map([[device, 2]])
          : new Map([
              [had, 1],
              [device, 1],
            ]),
      );
    else had.set(device, (had.get(device) ?? 0) + 1);
  }

  down(user: UserId, device: DeviceId): void {
    const had = this.users.get(user);
    if (had === undefined) return;
    if (typeof had === 'string') {
      if (had === device) this.users.delete(user);
      return;
    }
    const n = had.get(device);
    if (n === undefined) return;
    if (n > 1) had.set(device, n - 1);
    else had.delete(device);
    if (had.size === 0) this.users.delete(user);
    else if (had.size === 1) {
      const [only, count] = had.entries().next().value!;
      if (count === 1) this.users.set(user, only);
    }
  }

  connectedDevices(user: UserId): readonly DeviceId[] {
    return devicesOf(this.users.get(user));
  }

  /** Every connected (user, devices) pair on this node. */
  *entries(): IterableIterator<[UserId, DeviceId[]]> {
    for (const [user, devices] of this.users) yield [user, devicesOf(devices)];
  }

  /** Users with at least one connected device. */
  get onlineUsers(): number {
    return this.users.size;
  }
}

function devicesOf(held: DeviceId | Map<DeviceId, number> | undefined): DeviceId[] {
  if (held === undefined) return [];
  return typeof held === 'string' ? [held] : [...held.keys()];
}
