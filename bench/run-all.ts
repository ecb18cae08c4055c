/**
 * `npm run bench`: every benchmark, one after another, each in its own process (so one
 * benchmark's memory, open files and servers never colour the next), then the README.
 *
 *   npm run bench [-- --quick] [--skip store,gateway]
 *
 * Each benchmark is also runnable alone (npm run bench:store, bench:dynamodb-cost,
 * bench:lookup, bench:peers, bench:gateway, bench:e2e). The gateway benchmark runs before e2e, which quotes its
 * drain and live latency. A failed benchmark is reported and the rest still run; the
 * exit code says whether all passed. Ctrl-C / SIGTERM stop the running benchmark (it
 * cleans up after itself) and nothing after it starts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { benchArgs } from './lib/args.js';
import { log } from './lib/progress.js';
import { REPO_DIR, resultsDir } from './lib/results.js';
import { writeReport, type RunStep } from './report.js';

const ORDER: Array<{ script: string; title: string }> = [
  { script: 'bench:store', title: 'store engines' },
  { script: 'bench:dynamodb-cost', title: 'DynamoDB capacity units per message' },
  { script: 'bench:lookup', title: 'lookup vs scan' },
  { script: 'bench:peers', title: 'pobox vs Redis, PostgreSQL, NATS' },
  { script: 'bench:gateway', title: 'gateway drain, live, throughput' },
  { script: 'bench:e2e', title: 'reconnect storm, idle connections' },
];

let current: ChildProcess | undefined;
let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    log(`\nbench: ${sig}: stopping the running benchmark (it cleans up after itself)...`);
    // The child runs in its own process group: signal the whole group (npm and node).
    if (current?.pid) {
      try {
        process.kill(-current.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  });
}

async function main(): Promise<number> {
  const args = benchArgs({ skip: { type: 'string' } });
  const skip = new Set(typeof args.values.skip === 'string' ? args.values.skip.split(',').map((s) => (s.startsWith('bench:') ? s : `bench:${s}`)) : []);
  const scripts = (JSON.parse(readFileSync(path.join(REPO_DIR, 'package.json'), 'utf8')) as { scripts?: Record<string, string> }).scripts ?? {};
  const steps: RunStep[] = [];
  const started = Date.now();
  const todo = ORDER.filter((s) => !skip.has(s.script));
  for (const [i, step] of todo.entries()) {
    if (stopping) {
      steps.push({ script: step.script, title: step.title, status: 'not run (interrupted)', seconds: 0 });
      continue;
    }
    if (!scripts[step.script]) {
      log(`bench [${i + 1}/${todo.length}] ${step.script}: no such npm script yet, skipped`);
      steps.push({ script: step.script, title: step.title, status: 'skipped (no script)', seconds: 0 });
      continue;
    }
    log(`\nbench [${i + 1}/${todo.length}] ${step.script}: ${step.title}${args.quick ? ' (quick)' : ''}  (${elapsed(started)} so far)`);
    const t0 = Date.now();
    const code = await run(step.script, args.quick ? ['--quick'] : []);
    const seconds = Math.round((Date.now() - t0) / 100) / 10;
    const status = code === 0 ? 'ok' : stopping ? 'interrupted' : `failed (exit ${code})`;
    steps.push({ script: step.script, title: step.title, status, seconds });
    log(`bench [${i + 1}/${todo.length}] ${step.script}: ${status} in ${seconds} s`);
  }
  const dir = resultsDir(args.quick);
  writeFileSync(
    path.join(dir, 'run.json'),
    `${JSON.stringify({ quick: args.quick, startedAt: new Date(started).toISOString(), seconds: Math.round((Date.now() - started) / 1000), steps }, null, 2)}\n`,
  );
  const readme = await writeReport(dir, args.quick);
  log(`\nbench: done in ${elapsed(started)}; wrote ${readme}`);
  return steps.some((s) => s.status.startsWith('failed') || s.status === 'interrupted') || stopping ? 1 : 0;
}

function run(script: string, extra: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn('npm', ['run', '--silent', script, ...(extra.length ? ['--', ...extra] : [])], {
      cwd: REPO_DIR,
      stdio: 'inherit',
      detached: true,
    });
    current = child;
    child.once('exit', (code, signal) => {
      current = undefined;
      resolve(code ?? (signal ? 1 : 0));
    });
    child.once('error', (err) => {
      log(`bench: could not start ${script}: ${err.message}`);
      current = undefined;
      resolve(1);
    });
  });
}

function elapsed(since: number): string {
  const s = Math.round((Date.now() - since) / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    log(err.stack ?? err.message);
    process.exit(1);
  },
);
