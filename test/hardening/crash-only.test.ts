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

function runChild(trigger: string, options = '{}'): { status: number | null; stdout: string } {
  const script = `
    import { installCrashOnly } from './src/cli/crash-only.ts';
    import { createLogger } from './src/gateway/logger.ts';
    import { answerCommitFailure, answeredCommitLeak } from './src/store/lmdb/commit-leak.ts';
    const log = createLogger('info');
    installCrashOnly(() => log, ${options});
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

  it("lmdb-js's unreachable promise of a commit failure the engine answered passes as a known leak (as pobox serve installs it); of another commit, it exits", () => {
    // The shape lmdb-js gives every promise of a failed commit (src/store/lmdb/commit-leak.ts).
    const commitFailure = (detail: string) => `Object.assign(new Error('Commit failed (see commitError for details)'), { commitError: ${detail} })`;
    const setup = `const detail = Promise.reject(new Error('Input/output error')); answerCommitFailure(${commitFailure('detail')});`;
    const answered = runChild(`${setup} void Promise.reject(${commitFailure('detail')});`, '{ knownLeak: answeredCommitLeak }');
    assert.equal(answered.status, 0, answered.stdout);
    assert.match(answered.stdout, /known library leak/);
    assert.match(answered.stdout, /still running/);
    const other = runChild(
      `${setup} const unseen = Promise.reject(new Error('EIO')); unseen.catch(() => undefined); void Promise.reject(${commitFailure('unseen')});`,
      '{ knownLeak: answeredCommitLeak }',
    );
    assert.equal(other.status, CRASH_EXIT_CODE, other.stdout);
    assert.match(other.stdout, /unhandled rejection/);
  });

  it('an uncaught exception is logged and exits non-zero', () => {
    const r = runChild(`setTimeout(() => { throw new TypeError('boom'); }, 10);`);
    assert.equal(r.status, CRASH_EXIT_CODE);
    assert.match(r.stdout, /uncaught exception/);
    assert.match(r.stdout, /TypeError: boom/);
    assert.doesNotMatch(r.stdout, /still running/);
  });
});
