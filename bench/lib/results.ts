/**
 * Where results go. A full run writes bench/results/*.json (committed); a `--quick` run
 * writes bench/results/quick/ (ignored by git), so a CI smoke run never overwrites the
 * measured numbers. BENCH_RESULTS_DIR overrides both, and run-all passes it on to every
 * benchmark it starts.
 */
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { interrupted } from './cleanup.js';
import { machineInfo, machineMarkdown, type MachineInfo } from './machine.js';

export const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_DIR = path.resolve(BENCH_DIR, '..');

export function resultsDir(quick: boolean): string {
  const dir = process.env.BENCH_RESULTS_DIR ?? path.join(BENCH_DIR, 'results', ...(quick ? ['quick'] : []));
  mkdirSync(dir, { recursive: true });
  return dir;
}

export type BenchMachine = MachineInfo & { peers?: Record<string, string> };

/** machine.ts's record (packages by name) plus the peers' server versions. */
export function benchMachine(packages: readonly string[], peers: Record<string, string> = {}): BenchMachine {
  return { ...machineInfo(packages), peers };
}

export interface ResultEnvelope<T> {
  name: string;
  quick: boolean;
  startedAt: string;
  finishedAt: string;
  /** The machine, plus the versions of the servers measured against. */
  machine: BenchMachine;
  /** The parameters the run used (sizes, concurrency, seeds). */
  params: Record<string, unknown>;
  /** What limited the numbers, in words, for the README. */
  notes: string[];
  data: T;
}

export function writeResult<T>(dir: string, env: ResultEnvelope<T>): string {
  const file = path.join(dir, `${env.name}.json`);
  // An interrupted run's numbers are partial: keep the previous file.
  if (interrupted()) return `${file} (not written: interrupted)`;
  writeFileSync(file, `${JSON.stringify(env, null, 2)}\n`);
  return file;
}

/**
 * Write a benchmark's two result files: `<name>.json` (the envelope) and `<name>.md`, a page
 * of `lines` (title, run line, tables) followed by the envelope's notes as a list and the
 * machine. Returns the Markdown.
 */
export function writeResultPages<T>(dir: string, env: ResultEnvelope<T>, lines: readonly string[]): string {
  writeResult(dir, env);
  const md = [...lines, '', ...env.notes.map((n) => `- ${n}`), '', '## Machine', '', machineMarkdown(env.machine), ''].join('\n');
  if (!interrupted()) writeFileSync(path.join(dir, `${env.name}.md`), md);
  return md;
}

export function readResult<T = unknown>(dir: string, name: string): ResultEnvelope<T> | undefined {
  const file = path.join(dir, `${name}.json`);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ResultEnvelope<T>;
  } catch {
    return undefined;
  }
}

/** Read any JSON file in the results dir (other benchmarks' formats are their own). */
export function readJson(dir: string, name: string): unknown {
  const file = path.join(dir, `${name}.json`);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}
