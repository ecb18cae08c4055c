/**
 * `pobox inspect <user>`: one mailbox: pending count and bytes, the oldest message's
 * age, and each device's cursor and how far behind the head it is.
 */
import type { Command } from 'commander';
import { emit, humanAge, humanBytes, isoTime, keyValues, table } from '../admin/output.js';
import { addTargetOptions } from '../admin/options.js';
import { withTarget, type TargetFlags } from '../admin/target.js';

export function registerInspect(program: Command): void {
  addTargetOptions(
    program.command('inspect').description("show a user's mailbox: pending messages and bytes, oldest message, devices and cursors").argument('<user>', 'user id'),
  ).action(async (user: string, opts: TargetFlags) => {
    const s = await withTarget(opts, 'admin', (t) => t.stats(user));
    emit(opts.json === true, s, () => {
      const head = keyValues([
        ['user', s.user],
        ['epoch', s.epoch || '-'],
        ['last seq', s.lastSeq],
        ['pending', s.pending],
        ['pending bytes', `${s.pendingBytes} (${humanBytes(s.pendingBytes)})`],
        ['oldest', humanAge(s.oldestAgeMs)],
      ]);
      const devices =
        s.devices.length === 0
          ? 'no devices registered\n'
          : table(
              ['DEVICE', 'CURSOR', 'BEHIND', 'REGISTERED'],
              s.devices.map((d) => [d.device, d.cursor, s.lastSeq - d.cursor, isoTime(d.registeredAt)]),
            );
      return `${head}\n${devices}`;
    });
  });
}
