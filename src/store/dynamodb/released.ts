/**
 * Which messages the meta item already counts as deleted. An ack, a device removal or a
 * purge first commits the meta item (cursor, count, bytes, floor) and then deletes the
 * messages in batches; a crash in between leaves "released" messages behind. They are
 * invisible to every reader (at or below the reader's cursor, or addressed to a device
 * that is gone), and when one expires the sweeper deletes it without counting it twice.
 */
import type { DeviceId, Seq } from '../../core/ids.js';
import { hasDevice } from '../rules.js';
import type { MetaValue } from './codec.js';

export function isReleased(meta: MetaValue, seq: Seq, toDevice: DeviceId | undefined): boolean {
  if (seq <= meta.floor) return true;
  if (toDevice === undefined) return false;
  if (!hasDevice(meta.devices, toDevice)) return true;
  return seq <= meta.devices[toDevice]!.cursor;
}
