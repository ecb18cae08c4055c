/**
 * Crash-only process handlers (src/cli/crash-only.ts, installed by `pobox serve`): an
 * unhandled rejection or an uncaught exception is logged and the process exits non-zero,
 * instead of running on in an unknown state.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CRASH_EXIT_CODE } from '../../src/cli/crash-only.js';

const root = join(import.meta.dirname, '..', '..');

function runChild(trigger: string): { status: number | null; stdout: string } {
  const script = `
    import { installCrashOnly } from './src/cli/crash-only.ts';
    import { createLogger } from './src/gateway/logger.ts';
    const log = createLogger('info');
    installCrashOnly(() => log);
    ${trigger}
    setTimeout(() => { log.info('still running'); process.exit(0); }, 500);
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout };
}

describe('crash-only', () => {
  it('an unhandled rejection is logged and exits non-zero', () => {
    const r = runChild(`void Promise.reject(new Error('Commit failed: No space left on device'));`);
    assert.equal(r.status, CRASH_EXIT_CODE);
    const line = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { level: number; msg: string; err: string };
    assert.equal(line.level, 60);
    assert.match(line.msg, /unhandled rejection/);
    assert.match(line.err, /No space left/);
    assert.doesNotMatch(r.stdout, /still running/);
  });

  it('an uncaught exception is logged and exits non-zero', () => {
    const r = runChild(`setTimeout(() => { throw new TypeError('boom'); }, 10);`);
    assert.equal(r.status, CRASH_EXIT_CODE);
    assert.match(r.stdout, /uncaught exception/);
    assert.match(r.stdout, /TypeError: boom/);
    assert.doesNotMatch(r.stdout, /still running/);
  });
});
