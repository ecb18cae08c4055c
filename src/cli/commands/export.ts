/**
 * `pobox export <user> [--out file]` writes a user's mailbox (devices, cursors, pending
 * messages) as NDJSON, to stdout or a file; `pobox import <file|-> [--user u]` restores
 * such a file into an empty mailbox, keeping seqs, ids and cursors (the format is in
 * src/postoffice/export.ts). Both work on a running server (--url) or a stopped server's
 * data dir. A progress bar goes to stderr when it is a terminal (or with --progress);
 * stdout carries only the export, or only the summary.
 */
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { z } from 'zod';
import { PoboxError } from '../../core/errors.js';
import { UserIdSchema } from '../../core/ids.js';
import { parseInput } from '../../core/validate.js';
import { parseHeader } from '../../postoffice/export.js';
import { emit, humanBytes, keyValues } from '../admin/output.js';
import { addTargetOptions } from '../admin/options.js';
import { withTarget, type TargetFlags } from '../admin/target.js';

const ExportArgsSchema = z.object({ user: UserIdSchema, out: z.string().min(1, '--out needs a file name').optional() });
const ImportArgsSchema = z.object({ file: z.string().min(1, 'give the file to import (- for stdin)'), user: UserIdSchema.optional() });

type ProgressFlags = { progress?: boolean };

/** A bar on stderr when it is a terminal, or always with --progress; undefined otherwise. */
function progressBar(flags: ProgressFlags, unit: string, total: number): SingleBar | undefined {
  if (!flags.progress && !process.stderr.isTTY) return undefined;
  const bar = new SingleBar({
    stream: process.stderr,
    format: `{bar} {percentage}% | {value}/{total} ${unit} | {duration_formatted}`,
    noTTYOutput: flags.progress === true,
    hideCursor: true,
  });
  bar.start(total, 0);
  return bar;
}

async function writeTo(out: Writable, text: string): Promise<void> {
  if (!out.write(text)) await once(out, 'drain');
}

interface EndCounts {
  devices: number;
  messages: number;
  bytes: number;
}

export function registerExport(program: Command): void {
  addTargetOptions(
    program
      .command('export')
      .description("write a user's devices, cursors and pending messages as NDJSON (for pobox import)")
      .argument('<user>', 'user id')
      .option('--out <file>', 'write to this file instead of stdout')
      .option('--progress', 'show the progress bar on stderr even when it is not a terminal'),
  ).action(async (user: string, opts: TargetFlags & ProgressFlags & { out?: string }) => {
    const args = parseInput(ExportArgsSchema, { user, out: opts.out }, 'export');
    await withTarget(opts, 'admin', async (t) => {
      const total = (await t.stats(args.user)).pending;
      const out: Writable = args.out !== undefined ? createWriteStream(args.out) : process.stdout;
      const bar = progressBar(opts, 'messages', total);
      let end: EndCounts | undefined;
      let messages = 0;
      try {
        for await (const line of t.exportLines(args.user)) {
          await writeTo(out, line);
          if (line.startsWith('{"type":"message"')) {
            messages++;
            // Sends stored since the count above raise the total rather than overrun it.
            if (bar && messages > bar.getTotal()) bar.setTotal(messages);
            bar?.update(messages);
          } else if (line.startsWith('{"type":"end"')) end = JSON.parse(line) as EndCounts;
        }
      } finally {
        bar?.stop();
        if (out !== process.stdout) {
          out.end();
          await once(out, 'close');
        }
      }
      if (!end) throw new PoboxError('UNAVAILABLE', `the export of ${args.user} ended early (no end line)`);
      const counts = end;
      const summary = { user: args.user, ...(args.out !== undefined ? { file: args.out } : {}), devices: counts.devices, messages: counts.messages, bytes: counts.bytes };
      if (args.out === undefined) {
        // stdout is the export itself: the summary goes to stderr.
        process.stderr.write(`exported ${user}: ${counts.devices} devices, ${counts.messages} messages, ${humanBytes(counts.bytes)}\n`);
        return;
      }
      emit(opts.json === true, summary, () =>
        keyValues([
          ['user', args.user],
          ['file', args.out],
          ['devices', counts.devices],
          ['messages', counts.messages],
          ['bytes', `${counts.bytes} (${humanBytes(counts.bytes)})`],
        ]),
      );
    });
  });
}

/**
 * The first line of a byte stream (the export header, a few hundred bytes) and the whole
 * stream again, so a file or stdin is read once.
 */
async function peekHeader(source: AsyncIterable<Uint8Array>): Promise<{ user: string; chunks: AsyncIterable<Uint8Array> }> {
  const it = source[Symbol.asyncIterator]();
  const seen: Buffer[] = [];
  let all = Buffer.alloc(0);
  while (all.indexOf(10) === -1 && all.length < 64 * 1024) {
    const r = await it.next();
    if (r.done) break;
    seen.push(Buffer.from(r.value));
    all = Buffer.concat(seen);
  }
  const nl = all.indexOf(10);
  const header = parseHeader(
    all
      .subarray(0, nl === -1 ? all.length : nl)
      .toString('utf8')
      .replace(/\r$/, ''),
  );
  async function* again(): AsyncGenerator<Uint8Array> {
    yield all;
    for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
  }
  return { user: header.user, chunks: again() };
}

export function registerImport(program: Command): void {
  addTargetOptions(
    program
      .command('import')
      .description('restore a pobox export (NDJSON) into an empty mailbox, keeping seqs, ids and cursors')
      .argument('<file>', 'the export file, or - for stdin')
      .option('--user <user>', 'import into this user instead of the one the export names')
      .option('--progress', 'show the progress bar on stderr even when it is not a terminal'),
  ).action(async (file: string, opts: TargetFlags & ProgressFlags & { user?: string }) => {
    const args = parseInput(ImportArgsSchema, { file, user: opts.user }, 'import');
    let size: number | undefined;
    if (args.file !== '-') {
      try {
        size = statSync(args.file).size;
      } catch (err) {
        throw new PoboxError('NOT_FOUND', `cannot read ${args.file}: ${(err as Error).message}`, { field: 'file' });
      }
    }
    const source = (args.file === '-' ? process.stdin : createReadStream(args.file)) as AsyncIterable<Uint8Array>;
    const peeked = await peekHeader(source);
    const user = args.user ?? peeked.user;
    await withTarget(
      opts,
      'admin',
      async (t) => {
        const bar = size !== undefined ? progressBar(opts, 'bytes', size) : undefined;
        async function* counted(): AsyncGenerator<Uint8Array> {
          for await (const chunk of peeked.chunks) {
            bar?.increment(chunk.length);
            yield chunk;
          }
        }
        let r;
        try {
          r = await t.importNdjson(user, counted());
        } finally {
          bar?.stop();
        }
        emit(opts.json === true, r, () =>
          keyValues([
            ['user', r.user],
            ['exported from', r.from],
            ['epoch', r.epoch],
            ['last seq', r.lastSeq],
            ['devices', r.devices],
            ['messages', r.messages],
            ['bytes', `${r.bytes} (${humanBytes(r.bytes)})`],
          ]),
        );
      },
      { create: true },
    );
  });
}
