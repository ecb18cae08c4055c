/**
 * `pobox devices <user>` lists a user's devices; `pobox devices <user> add <device>
 * [--start auto|oldest|head]` registers one; `pobox devices <user> remove <device>` drops
 * one (and the messages only it was still holding up).
 */
import type { Command } from 'commander';
import { z } from 'zod';
import { deviceNotRegistered } from '../../core/errors.js';
import { parseInput } from '../../core/validate.js';
import { emit, isoTime, table } from '../admin/output.js';
import { addTargetOptions } from '../admin/options.js';
import { withTarget, type TargetFlags } from '../admin/target.js';

const ActionSchema = z.enum(['list', 'add', 'remove'], { error: 'action must be add or remove (or nothing, to list)' });
const ArgsSchema = z.discriminatedUnion('action', [
  z.object({ action: z.literal('list') }),
  z.object({ action: z.literal('add'), device: z.string().min(1, 'add needs a device id'), start: z.enum(['auto', 'oldest', 'head']) }),
  z.object({ action: z.literal('remove'), device: z.string().min(1, 'remove needs a device id') }),
]);

export function registerDevices(program: Command): void {
  addTargetOptions(
    program
      .command('devices')
      .description("list a user's devices, or add / remove one")
      .argument('<user>', 'user id')
      .argument('[action]', 'add or remove (default: list)')
      .argument('[device]', 'device id for add / remove')
      .option('--start <where>', 'for add: auto, oldest or head', 'auto'),
  ).action(async (user: string, action: string | undefined, device: string | undefined, opts: TargetFlags & { start: string }) => {
    parseInput(ActionSchema, action ?? 'list', 'devices: action');
    const args = parseInput(ArgsSchema, { action: action ?? 'list', device: device ?? '', start: opts.start }, 'devices');
    await withTarget(opts, 'admin', async (t) => {
      switch (args.action) {
        case 'list': {
          const devices = await t.listDevices(user);
          emit(opts.json === true, { user, devices }, () =>
            devices.length === 0
              ? `${user} has no devices\n`
              : table(
                  ['DEVICE', 'CURSOR', 'REGISTERED'],
                  devices.map((d) => [d.device, d.cursor, isoTime(d.registeredAt)]),
                ),
          );
          return;
        }
        case 'add': {
          const r = await t.addDevice(user, args.device, args.start);
          emit(opts.json === true, { user, ...r }, () => `${r.created ? 'added' : 'already registered'}: ${user}/${r.device} (cursor ${r.cursor})\n`);
          return;
        }
        case 'remove': {
          const removed = await t.removeDevice(user, args.device);
          if (!removed) throw deviceNotRegistered(user, args.device);
          emit(opts.json === true, { user, device: args.device, removed }, () => `removed: ${user}/${args.device}\n`);
          return;
        }
      }
    });
  });
}
