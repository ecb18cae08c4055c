/**
 * The one CLI runner of the tests: `runCli` runs the `pobox` program as a real process
 * (from source, through tsx) and answers {code, stdout, stderr}. It once ran `main` in the
 * test's own process with process.stdout swapped out, but from Node 22 a test file's
 * process reports to the runner through its own stdout, so the reporter's lines landed in
 * the captured output (and the CLI's in the report).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { CLI_MAIN } from './serve-process.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[]): Promise<CliResult> {
  return runCliProcess(args);
}

/** Run and parse stdout as JSON; fails with the output when the command failed. */
export async function runJson<T = Record<string, unknown>>(args: string[]): Promise<T> {
  const r = await runCli([...args, '--json']);
  if (r.code !== 0) throw new Error(`pobox ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** Run `pobox` as a real process with extra environment variables. */
export async function runCliProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI_MAIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code: code ?? 1, stdout, stderr };
}
