/**
 * The conformance suite on the embedded engine run in a worker thread (`worker: true`,
 * src/store/worker/host.ts): every behaviour through the call forwarding, errors crossing
 * the thread boundary as the codes callers branch on. A fresh temp dir per behaviour.
 * Each behaviour starts a worker thread, which under tsx loads its modules through tsx's
 * hooks of its own (about half a second on a quiet machine): the suite runs in two
 * files (lmdb-worker.test.ts, lmdb-worker-features.test.ts), one half each, so each stays
 * within the per-file timeout on a busy one.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/open.js';
import { defineConformance, type ConformancePart } from './suite.js';

export function defineLmdbWorkerConformance(part: ConformancePart): void {
  defineConformance(
    'lmdb in a worker thread',
    async () => {
      const path = await mkdtemp(join(tmpdir(), 'pobox-conf-worker-'));
      return {
        store: await openStore({ engine: 'lmdb', path, worker: true }),
        reopen: () => openStore({ engine: 'lmdb', path, worker: true }),
        cleanup: () => rm(path, { recursive: true, force: true }),
      };
    },
    [part],
  );
}
