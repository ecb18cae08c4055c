/**
 * The conformance suite on the embedded engine run in a worker thread (`worker: true`,
 * src/store/worker/host.ts): every behaviour through the call forwarding, errors crossing
 * the thread boundary as the codes callers branch on. A fresh temp dir per behaviour.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/open.js';
import { defineConformance } from './suite.js';

defineConformance('lmdb in a worker thread', async () => {
  const path = await mkdtemp(join(tmpdir(), 'pobox-conf-worker-'));
  return {
    store: await openStore({ engine: 'lmdb', path, worker: true }),
    reopen: () => openStore({ engine: 'lmdb', path, worker: true }),
    cleanup: () => rm(path, { recursive: true, force: true }),
  };
});
