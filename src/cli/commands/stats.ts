/**
 * `pobox stats`: totals over every mailbox (users, devices, pending messages and bytes,
 * the oldest pending message). It walks all users a page at a time; on a terminal it
 * counts them first and shows a progress bar on stderr while it walks.
 */
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { z } from 'zod';
import { parseInput } from '../../core/validate.js';
import { emptyTotals, mergeTotals } from '../../metrics/totals.js';
import { emit, humanAge, humanBytes, keyValues } from '../admin/output.js';
import { addTargetOptions } from '../admin/options.js';
import { withTarget, type AdminTarget, type TargetFlags } from '../admin/target.js';

const PageSchema = z.coerce.number().int().min(1).max(10_000);

async function countUsers(t: AdminTarget, pageSize: number): Promise<number> {
  let n = 0;
  let after: string | undefined;
  for (;;) {
    const page = await t.users(after, pageSize);
    n += page.length;
    if (page.length < pageSize) return n;
    after = page[page.length - 1];
  }
}

export function registerStats(program: Command): void {
  addTargetOptions(
    program
      .command('stats')
      .description('totals over all mailboxes: users, devices, pending messages and bytes, oldest message')
      .option('--page-size <n>', 'users per request while walking', '500')
      .option('--no-progress', 'never show the progress bar'),
  ).action(async (opts: TargetFlags & { pageSize: string; progress: boolean }) => {
    const pageSize = parseInput(PageSchema, opts.pageSize, '--page-size');
    const showBar = opts.progress && opts.json !== true && process.stderr.isTTY === true;
    const totals = await withTarget(opts, 'admin', async (t) => {
      let bar: cliProgress.SingleBar | undefined;
      if (showBar) {
        const total = await countUsers(t, Math.max(pageSize, 1000));
        bar = new cliProgress.SingleBar(
          { stream: process.stderr, format: 'walking users [{bar}] {value}/{total} {percentage}% eta {eta_formatted}' },
          cliProgress.Presets.shades_classic,
        );
        bar.start(total, 0);
      }
      try {
        let sum = emptyTotals();
        let after: string | undefined;
        for (;;) {
          const page = await t.totals(after, pageSize);
          sum = mergeTotals(sum, page.totals);
          if (bar) {
            // Users created during the walk can push the count past the first estimate.
            if (sum.users > bar.getTotal()) bar.setTotal(sum.users);
            bar.update(sum.users);
          }
          if (page.next === undefined) return sum;
          after = page.next;
        }
      } finally {
        bar?.stop();
      }
    });
    emit(opts.json === true, totals, () =>
      keyValues([
        ['users', totals.users],
        ['users with pending', totals.usersWithPending],
        ['devices', totals.devices],
        ['pending messages', totals.pending],
        ['pending bytes', `${totals.pendingBytes} (${humanBytes(totals.pendingBytes)})`],
        ['oldest pending', humanAge(totals.oldestAgeMs)],
      ]),
    );
  });
}
