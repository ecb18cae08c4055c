#!/usr/bin/env node
/**
 * The `pobox` command. Each sub-command lives in src/cli/commands/ and registers itself
 * here; every flag is validated by a schema before anything runs.
 */
import { Command, CommanderError } from 'commander';
import { isPoboxError } from '../core/errors.js';
import { registerServe } from './commands/serve.js';
import { registerToken } from './commands/token.js';
import { registerInspect } from './commands/inspect.js';
import { registerPurge } from './commands/purge.js';
import { registerDevices } from './commands/devices.js';
import { registerStats } from './commands/stats.js';
import { registerSend } from './commands/send.js';
import { registerDynamoDb } from './commands/dynamodb.js';
import { registerExport, registerImport } from './commands/export.js';

export function buildProgram(): Command {
  const program = new Command('pobox').description('durable per-user mailboxes for offline chat delivery').version('0.1.0').showHelpAfterError().exitOverride();
  // sub-commands register below, one line each
  registerServe(program);
  registerToken(program);
  registerInspect(program);
  registerPurge(program);
  registerDevices(program);
  registerStats(program);
  registerSend(program);
  registerDynamoDb(program);
  registerExport(program);
  registerImport(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    if (isPoboxError(err)) {
      process.stderr.write(`pobox: ${err.code}: ${err.message}\n`);
      return err.code === 'BAD_REQUEST' ? 2 : 1;
    }
    process.stderr.write(`pobox: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}

/** Run the CLI as a process: the exit code becomes the process's. */
export function runCli(argv: string[] = process.argv): void {
  main(argv).then(
    (code) => {
      if (code !== 0) process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`pobox: ${String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

// Run when executed directly (e.g. `node --import tsx src/cli/main.ts`), not when imported by bin/pobox.js.
if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1])) runCli();
