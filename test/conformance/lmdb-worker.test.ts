/** The conformance suite's core behaviours on lmdb in a worker thread; the rest in lmdb-worker-features.test.ts. */
import { defineLmdbWorkerConformance } from './lmdb-worker-engine.js';

defineLmdbWorkerConformance('core');
