/**
 * The admin target for a stopped server's data dir: the embedded engine opened
 * directly, through a post office so input is validated exactly as the server does.
 * Uses the default limits; a server run with other limits should be administered
 * over HTTP instead.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PoboxError, deviceNotRegistered } from '../../core/errors.js';
import type { DeviceId, UserId } from '../../core/ids.js';
import { totalsPage } from '../../metrics/totals.js';
import { exportLines, importLines, maxLineBytes, splitLines } from '../../postoffice/export.js';
import { PostOffice } from '../../postoffice/post-office.js';
import { openStore } from '../../store/open.js';
import type { AdminTarget, DataDirOptions } from './contract.js';

export async function openDataDirTarget(dataDir: string, opts: DataDirOptions = {}): Promise<AdminTarget> {
  const dir = resolve(dataDir);
  const path = join(dir, 'lmdb');
  if (!opts.create && !existsSync(path)) {
    throw new PoboxError('NOT_FOUND', `no embedded store at ${path}: give --data-dir of a pobox server, or --url of a running one`, { field: 'dataDir' });
  }
  const store = await openStore({ engine: 'lmdb', path });
  const po = new PostOffice({ store, sweeper: false });
  const skipToHead = async (user: UserId, device: DeviceId) => {
    const s = await po.stats(user);
    if (!s.devices.some((d) => d.device === device)) throw deviceNotRegistered(user, device);
    const r = await po.ack(user, device, s.lastSeq, { adminSkip: true });
    return { cursor: r.cursor, deleted: r.deleted };
  };
  return {
    where: dir,
    stats: (user) => po.stats(user),
    purge: (user) => po.purge(user),
    skipToHead,
    listDevices: (user) => po.listDevices(user),
    addDevice: async (user, device, start) => {
      const r = await po.registerDevice(user, device, start);
      return { device: r.device, cursor: r.cursor, registeredAt: r.registeredAt, created: r.created };
    },
    removeDevice: (user, device) => po.removeDevice(user, device),
    users: (after, limit) => store.users(after === undefined ? { limit } : { after, limit }),
    totals: (after, limit) => totalsPage({ users: (o) => store.users(o), stats: (u) => po.stats(u) }, after, limit),
    send: (msg) => po.send(msg),
    exportLines: (user) => exportLines(po, user),
    importNdjson: (user, chunks) => importLines(po, splitLines(chunks, maxLineBytes(po.importLimits())), { user }),
    close: () => po.close(),
  };
}
