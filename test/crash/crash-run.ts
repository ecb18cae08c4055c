/**
 * npm run crash -- --cycles N [--seed S] [--engine lmdb|dynamodb] [--path DIR] [--table T --endpoint URL --region R] [--worker]
 *
 * Runs N kill-and-check cycles (see harness.ts) and ends with exactly one line on stdout:
 *   crash: N cycles, A acknowledged, L lost, D duplicated (seed S; kills inside an apply X (Z between its chunks and its last commit), inside a trim Y)
 * The seed (random unless given) is printed first on stderr too: the same seed replays the
 * same kill schedule and the same writer choices (timing on a busy machine still varies).
 * Progress goes to stderr. Exit code 1 when anything was lost or duplicated.
 * Without --path, the lmdb engine uses a temp dir that is removed at the end, even on Ctrl-C.
 * --worker: the writer runs the engine in a worker thread (`--store-worker`); the check
 * opens it in process as always.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { crashLine, runCrash } from './harness.js';

const { values } = parseArgs({
  options: {
    cycles: { type: 'string', default: '20' },
    seed: { type: 'string' },
    engine: { type: 'string', default: 'lmdb' },
    path: { type: 'string' },
    table: { type: 'string' },
    endpoint: { type: 'string' },
    region: { type: 'string' },
    worker: { type: 'boolean', default: false },
  },
});
const cycles = Number(values.cycles);
if (!Number.isInteger(cycles) || cycles < 1) {
  process.stderr.write(`--cycles must be a positive integer, got ${values.cycles}\n`);
  process.exit(2);
}

let tempDir: string | undefined;
let storeConfig: Record<string, unknown>;
if (values.engine === 'lmdb') {
  if (!values.path) tempDir = mkdtempSync(join(tmpdir(), 'pobox-crash-'));
  storeConfig = { engine: 'lmdb', path: values.path ?? tempDir };
} else if (values.engine === 'dynamodb') {
  storeConfig = { engine: 'dynamodb', table: values.table, ...(values.endpoint ? { endpoint: values.endpoint } : {}), ...(values.region ? { region: values.region } : {}) };
} else {
  process.stderr.write(`unknown --engine ${values.engine}\n`);
  process.exit(2);
}
const cleanup = (): void => {
  if (tempDir) rmSync(tempDir, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
if (!Number.isInteger(seed) || seed < 0) {
  process.stderr.write(`--seed must be a non-negative integer, got ${values.seed}\n`);
  process.exit(2);
}
process.stderr.write(`crash: seed ${seed}\n`);

try {
  const totals = await runCrash({
    storeConfig,
    cycles,
    seed,
    worker: values.worker,
    onCycle: (n, t) => process.stderr.write(`\rcycle ${n}/${cycles}: ${t.acknowledged} acknowledged, ${t.lost} lost, ${t.duplicated} duplicated`),
  });
  process.stderr.write('\n');
  process.stdout.write(`${crashLine(totals)}\n`);
  process.exitCode = totals.lost === 0 && totals.duplicated === 0 ? 0 : 1;
} finally {
  cleanup();
}
