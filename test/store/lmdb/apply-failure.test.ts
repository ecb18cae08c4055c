/**
 * An apply whose LMDB commit fails (a full disk under LMDB while the write-ahead log still
 * has room) while it is written in chunks. A chunk's commit can fail turns before the
 * apply awaits it; the failure must reach the engine, never the process as an unhandled
 * rejection, which `pobox serve`'s crash-only rule turns into an exit (and a worker
 * thread into a dead store). The engine refuses calls UNAVAILABLE, recovers in place once
 * the disk has room, and every accepted message is there, before and after a reopen.
 *
 * The engine runs in a child (apply-failure-child.ts) under serve's crash-only rule, in
 * process and in a worker thread.
 * Needs `mount -t tmpfs` (CI runs as root); where mounting is refused the test is skipped
 * with the reason.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { mountTmpfs } from '../../support/tmpfs.js';

const CHILD = fileURLToPath(new URL('./apply-failure-child.ts', import.meta.url));

function runChild(mnt: string, offTmpfs: string, worker: boolean): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, mnt, offTmpfs, ...(worker ? ['--worker'] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-8000)));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

describe('lmdb apply that fails between its chunks', () => {
  for (const worker of [false, true]) {
    const where = worker ? ', the engine in a worker thread' : '';
    it(`is answered by the engine (no unhandled rejection), refused UNAVAILABLE, recovered in place, nothing accepted lost${where}`, { timeout: 90_000 }, async (t) => {
      const tmpfs = await mountTmpfs(4 * 1024 * 1024, 'pobox-apply-failure-');
      if ('refused' in tmpfs) {
        t.diagnostic(tmpfs.refused);
        t.skip(tmpfs.refused);
        return;
      }
      try {
        const { code, stdout, stderr } = await runChild(tmpfs.mnt, tmpfs.root, worker);
        // 70: an unhandled rejection the crash-only rule did not recognise (the failed chunk's commit).
        assert.equal(
          code,
          0,
          `the child failed (exit ${String(code)}): ${stderr
            .split('\n')
            .filter((l) => !/^(Write error|#|\s+at |\s*code: 28|\})/.test(l))
            .join('\n')
            .slice(-3000)}`,
        );
        const seen = JSON.parse(stdout.trim().split('\n').pop()!) as { refusal: string; whileFull: string[]; leaks: number };
        // The refusal names the OS error of the failed commit, not only lmdb-js's "Commit failed".
        // (ENOSPC, or EIO where lmdb-js meets the full disk at its sync).
        assert.match(seen.refusal, /^lmdb store failed: (No space left on device|Input\/output error)/);
        assert.equal(seen.whileFull[0], 'apply', 'an apply started while the disk was full');
        assert.ok(!seen.whileFull.includes('staged'), `it failed in its chunks, before its last transaction: ${seen.whileFull.join(',')}`);
        t.diagnostic(`lmdb-js promises of failed commits the engine had answered, passed by the crash-only rule: ${seen.leaks}`);
      } finally {
        await tmpfs.remove();
      }
    });
  }
});
