/** Run `pobox serve` as a child process (from source, through tsx) on 127.0.0.1. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(REPO, 'src/cli/main.ts');

export interface ServeChild {
  child: ChildProcess;
  url: string;
  wsUrl: string;
  /** Everything the child wrote to stderr so far. */
  stderr(): string;
  /** Resolves with the exit code (or signal) once the child has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A port that was free a moment ago (for restarting a server on the same address). */
export { freePort } from '../../tools/free-port.js';

export async function spawnServe(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<ServeChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--host', '127.0.0.1', ...args], {
    cwd: REPO,
    env: { ...process.env, POBOX_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => (err += d));
  const deadline = Date.now() + timeoutMs;
  let m: RegExpExecArray | null = null;
  while (!(m = /listening on (\S+) \(WebSocket (\S+)\)/.exec(err))) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`pobox serve exited early:\n${err}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`pobox serve did not start within ${timeoutMs} ms:\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { child, url: m[1]!, wsUrl: m[2]!, stderr: () => err, exited };
}

export async function runNode(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const child = spawn(process.execPath, args, { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`node ${args.join(' ')} exited ${code}:\n${err}${out}`);
  return out;
}
