/**
 * `pobox serve` whose stdout and stderr readers went away (`pobox serve 2>&1 | head -3`):
 * a write there fails with EPIPE. The server goes on serving and SIGTERM still shuts it
 * down gracefully (exit 0). Before, the failed stderr write became an uncaught exception,
 * crash-only logged it at fatal level, and pino's flush of the dead stdout retried the
 * write forever on the main thread, so no signal handler ever ran and only SIGKILL ended
 * the process. An uncaught exception with a dead stdout still exits 70 (crash-only).
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CRASH_EXIT_CODE } from '../../src/cli/crash-only.js';
import { freePort } from '../../tools/free-port.js';
import { waitFor } from '../support/wait.js';

const root = join(import.meta.dirname, '..', '..');
const MAIN = join(root, 'src', 'cli', 'main.ts');
/** A hung process is killed after this; a working one exits long before. */
const EXIT_BOUND_MS = 30_000;

/** Wait for the exit; SIGKILL past the bound (the test then fails on `signal`). */
function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve({ code: child.exitCode, signal: child.signalCode });
    const t = setTimeout(() => child.kill('SIGKILL'), EXIT_BOUND_MS);
    child.once('exit', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal });
    });
  });
}

/** Spawn with stdout and stderr pipes whose reading ends are closed at once. */
function spawnDeaf(args: string[]): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.destroy();
  child.stderr!.destroy();
  return child;
}

describe('closed stdout and stderr', () => {
  it('pobox serve keeps serving and exits 0 on SIGTERM', { timeout: 120_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pobox-closed-output-'));
    const port = await freePort();
    const child = spawnDeaf([MAIN, 'serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', join(dir, 'data'), '--log-level', 'info']);
    const exited = exitOf(child);
    try {
      const url = `http://127.0.0.1:${port}`;
      await waitFor(async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.status === 200, 'pobox serve answering', 60_000);
      // Lines to both dead pipes: the demo page's banner went to stderr; these log to stdout.
      for (const path of ['/readyz', '/v1/messages', '/nope']) await fetch(`${url}${path}`, { signal: AbortSignal.timeout(10_000) });
      assert.equal((await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(10_000) })).status, 200, 'still serving');
      child.kill('SIGTERM');
      assert.deepEqual(await exited, { code: 0, signal: null }, 'graceful exit on SIGTERM');
    } finally {
      child.kill('SIGKILL');
      await exited;
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('an uncaught exception with a dead stdout still exits with the crash-only code', { timeout: 60_000 }, async () => {
    const script = `
      import { installCrashOnly } from './src/cli/crash-only.ts';
      import { createLogger } from './src/gateway/logger.ts';
      const log = createLogger('info');
      installCrashOnly(() => log);
      // A line still on its way to the dead pipe when the fatal one is flushed.
      setTimeout(() => { log.info('a line to the dead pipe'); throw new TypeError('boom'); }, 200);
      setTimeout(() => process.exit(0), 20_000);
    `;
    const child = spawnDeaf(['--input-type=module', '-e', script]);
    assert.deepEqual(await exitOf(child), { code: CRASH_EXIT_CODE, signal: null });
  });
});
