/**
 * `pobox purge <user>` deletes every stored message of the user (devices, cursors and
 * seqs stay). `pobox purge <user> --device d` instead moves that one device's cursor to
 * the head: it skips its backlog, and messages every other device has acked go away.
 * No delivery receipts are produced either way: nothing was delivered.
 */
import type { Command } from 'commander';
import { emit, humanBytes, keyValues } from '../admin/output.js';
import { addTargetOptions } from '../admin/options.js';
import { withTarget, type TargetFlags } from '../admin/target.js';

export function registerPurge(program: Command): void {
  addTargetOptions(
    program
      .command('purge')
      .description("delete a user's stored messages, or with --device move that device to the head")
      .argument('<user>', 'user id')
      .option('--device <device>', 'only move this device to the head (skip its backlog)'),
  ).action(async (user: string, opts: TargetFlags & { device?: string }) => {
    await withTarget(opts, 'admin', async (t) => {
      if (opts.device !== undefined) {
        const device = opts.device;
        const r = await t.skipToHead(user, device);
        emit(opts.json === true, { user, device, cursor: r.cursor, deleted: r.deleted }, () =>
          keyValues([
            ['user', user],
            ['device', device],
            ['cursor now', r.cursor],
            ['messages deleted', r.deleted],
          ]),
        );
        return;
      }
      const r = await t.purge(user);
      emit(opts.json === true, { user, deleted: r.deleted, deletedBytes: r.deletedBytes }, () =>
        keyValues([
          ['user', user],
          ['messages deleted', r.deleted],
          ['bytes freed', `${r.deletedBytes} (${humanBytes(r.deletedBytes)})`],
        ]),
      );
    });
  });
}
