/** The conformance suite on the embedded engine: a fresh temp dir per behaviour. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openLmdbStore } from '../../src/store/lmdb/index.js';
import { defineConformance } from './suite.js';

defineConformance('lmdb', async () => {
  const path = await mkdtemp(join(tmpdir(), 'pobox-conf-'));
  return {
    store: await openLmdbStore({ path }),
    reopen: () => openLmdbStore({ path }),
    cleanup: () => rm(path, { recursive: true, force: true }),
  };
});
