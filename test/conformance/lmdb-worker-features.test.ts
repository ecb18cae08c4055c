/** The conformance suite's feature behaviours on lmdb in a worker thread; the core ones in lmdb-worker.test.ts. */
import { defineLmdbWorkerConformance } from './lmdb-worker-engine.js';

defineLmdbWorkerConformance('features');
