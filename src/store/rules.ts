/**
 * Mailbox rules every engine applies inside its own atomic step: which cursor a new
 * device starts at, and which messages an ack or a device removal lets us delete.
 * Pure functions over the device map, so each engine computes the same answer.
 */
import { addToGap } from '../core/gap.js';
import type { DeviceId, Seq } from '../core/ids.js';
import type { DeviceCursor, DeviceStart, GapNotice, GapReason } from '../core/types.js';

export interface DeviceValue {
  cursor: Seq;
  registeredAt: number;
  /** Messages removed while above this cursor, not yet reported and acked past (gap notice). */
  gap?: GapNotice;
}
export type DeviceMap = Record<DeviceId, DeviceValue>;

export function hasDevice(devices: DeviceMap, device: DeviceId): boolean {
  return Object.prototype.hasOwnProperty.call(devices, device);
}

/** The lowest cursor over all devices: every message at or below it is acked by all. */
export function minCursor(devices: DeviceMap): Seq | undefined {
  let min: Seq | undefined;
  for (const d of Object.values(devices)) if (min === undefined || d.cursor < min) min = d.cursor;
  return min;
}

export function deviceList(devices: DeviceMap): DeviceCursor[] {
  return Object.entries(devices)
    .map(([device, d]) => ({ device, cursor: d.cursor, registeredAt: d.registeredAt }))
    .sort((a, b) => (a.device < b.device ? -1 : a.device > b.device ? 1 : 0));
}

/**
 * A user's first device starts at the beginning (it gets everything kept for the user);
 * later devices start at the head unless asked for the oldest kept message.
 */
export function startCursor(devices: DeviceMap, start: DeviceStart, lastSeq: Seq): Seq {
  if (start === 'oldest') return 0;
  if (start === 'head') return lastSeq;
  return Object.keys(devices).length === 0 ? 0 : lastSeq;
}

/**
 * Seq ranges (lo, hi] to visit after a cursor move. Messages in `all` are deleted
 * whoever they were for (every device has acked them); in `targeted`, only those
 * addressed to `device` (no other device is ever shown them). Both ranges grow with
 * the progress made, never with another device's backlog.
 */
export interface DeletePlan {
  all: { lo: Seq; hi: Seq } | null;
  targeted: { lo: Seq; hi: Seq; device: DeviceId } | null;
}

export function planAfterAck(oldMin: Seq | undefined, newMin: Seq | undefined, device: DeviceId, oldCursor: Seq, newCursor: Seq): DeletePlan {
  const all = oldMin !== undefined && newMin !== undefined && newMin > oldMin ? { lo: oldMin, hi: newMin } : null;
  const lo = Math.max(oldCursor, newMin ?? 0);
  const targeted = newCursor > lo ? { lo, hi: newCursor, device } : null;
  return { all, targeted };
}

/** After removing `device` (whose cursor was `removedCursor`) from a mailbox whose head is lastSeq. */
export function planAfterRemove(oldMin: Seq | undefined, newMin: Seq | undefined, device: DeviceId, removedCursor: Seq, lastSeq: Seq): DeletePlan {
  const all = oldMin !== undefined && newMin !== undefined && newMin > oldMin ? { lo: oldMin, hi: newMin } : null;
  const lo = Math.max(removedCursor, newMin ?? 0);
  const targeted = lastSeq > lo ? { lo, hi: lastSeq, device } : null;
  return { all, targeted };
}

/**
 * After registering a device. A user's first device that starts past seq 0 (asked for
 * 'head') has in effect acked everything below its cursor: no device will ever be shown
 * those messages, so they go now instead of holding quota until they expire. A later
 * device never raises the lowest cursor, so it deletes nothing.
 */
export function planAfterRegister(oldMin: Seq | undefined, newMin: Seq | undefined): DeletePlan {
  const all = oldMin === undefined && newMin !== undefined && newMin > 0 ? { lo: 0, hi: newMin } : null;
  return { all, targeted: null };
}

/** A message leaving the mailbox without every device's ack: its seq and the device it was for, if one. */
export interface Removed {
  seq: Seq;
  toDevice?: DeviceId | undefined;
}

/**
 * The gap notices a removal (the sweeper's, a purge) leaves: every device whose cursor is
 * below a removed message that was for it (the user's, or addressed to that device) gets
 * it added to its notice. Returns only the devices whose notice changed, with the merged
 * notice to store beside their cursor in the same write as the removal.
 */
export function gapsAfterRemoval(devices: DeviceMap, removed: Iterable<Removed>, reason: GapReason): Map<DeviceId, GapNotice> {
  const out = new Map<DeviceId, GapNotice>();
  for (const r of removed) {
    for (const [device, d] of Object.entries(devices)) {
      if (r.seq <= d.cursor || (r.toDevice !== undefined && r.toDevice !== device)) continue;
      out.set(device, addToGap(out.get(device) ?? d.gap, r.seq, reason));
    }
  }
  return out;
}

/** A device's notice after its cursor moved to `upTo`: gone once the ack reaches its `to` (the device got past the whole range). */
export function gapAfterAck(gap: GapNotice | undefined, upTo: Seq): GapNotice | undefined {
  return gap && upTo < gap.to ? gap : undefined;
}

/** Whether an ack to `upTo` changes a device: it moves the cursor, or it reaches a notice the cursor is past already (an admin's skip left it). */
export function ackChanges(d: DeviceValue, upTo: Seq): boolean {
  return upTo > d.cursor || (d.gap !== undefined && gapAfterAck(d.gap, upTo) === undefined);
}

/**
 * A device's notice after an admin's skip passed `skipped` (the seqs of the messages for
 * it still stored above its cursor): added to the notice it had, reason 'purged'. Its `to`
 * is then at or below the new cursor; the device's ack of `to` removes it (ackChanges).
 */
export function gapAfterSkip(gap: GapNotice | undefined, skipped: Iterable<Seq>): GapNotice | undefined {
  let out = gap;
  for (const seq of skipped) out = addToGap(out, seq, 'purged');
  return out;
}
