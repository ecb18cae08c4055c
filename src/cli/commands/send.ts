/**
 * `pobox send --to <user> <text>`: store one message, over HTTP with a backend API key
 * (send scope; it names `--from`) or directly into a stopped server's data dir.
 */
import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import { z } from 'zod';
import { parseInput } from '../../core/validate.js';
import { emit, keyValues } from '../admin/output.js';
import { addTargetOptions } from '../admin/options.js';
import { withTarget, type TargetFlags } from '../admin/target.js';

const TtlSchema = z.coerce.number().int().min(1).optional();

export function registerSend(program: Command): void {
  addTargetOptions(
    program
      .command('send')
      .description('send one message to a user')
      .argument('<text>', 'the message body')
      .requiredOption('--to <user>', 'recipient user id')
      .option('--from <user>', 'sender user id', 'admin')
      .option('--to-device <device>', 'only this device of the recipient')
      .option('--id <id>', 'message id for dedupe (default: a new random id)')
      .option('--ttl <seconds>', 'retention in seconds (default: the server default)'),
    'send',
  ).action(async (text: string, opts: TargetFlags & { to: string; from: string; toDevice?: string; id?: string; ttl?: string }) => {
    const ttlSeconds = parseInput(TtlSchema, opts.ttl, '--ttl');
    const id = opts.id ?? `cli-${randomUUID()}`;
    const r = await withTarget(opts, 'send', (t) =>
      t.send({
        from: opts.from,
        to: opts.to,
        id,
        body: text,
        ...(opts.toDevice !== undefined ? { toDevice: opts.toDevice } : {}),
        ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
      }),
    );
    emit(opts.json === true, { id, to: opts.to, ...r }, () =>
      keyValues([
        ['to', opts.to],
        ['id', id],
        ['seq', r.seq],
        ['duplicate', r.duplicate],
        ['durable', r.durable],
      ]),
    );
  });
}
