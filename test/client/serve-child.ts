/** Run `pobox serve` as a child process (from source, through tsx) on 127.0.0.1. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnServeProcess } from '../support/serve-process.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

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
  const p = await spawnServeProcess('pobox serve', ['--host', '127.0.0.1', ...args], { ...process.env, POBOX_LOG_LEVEL: 'warn', ...env }, { timeoutMs });
  return { child: p.child, url: p.httpUrl, wsUrl: p.wsUrl, stderr: p.stderr, exited: p.exited };
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
