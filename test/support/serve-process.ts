/**
 * The one way the tests start `pobox serve` as a real process (from source, through tsx)
 * and wait until it listens: the URLs are read from the line it prints on stderr. The
 * child's output (stdout and stderr, the last `keepChars`) is kept for failure messages.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const CLI_MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface ServeProcess {
  readonly child: ChildProcess;
  readonly httpUrl: string;
  readonly wsUrl: string;
  /** What the process has printed so far, both streams (the last `keepChars`). */
  output(): string;
  /** Each stream on its own, in full. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or signal) once the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function spawnServeProcess(
  name: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  opts: { keepChars?: number; timeoutMs?: number; program?: readonly string[] } = {},
): Promise<ServeProcess> {
  const keepChars = opts.keepChars ?? 40_000;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  // `program`: what runs instead of the source through tsx (e.g. a compiled bin/pobox.js).
  const program = opts.program ?? ['--import', 'tsx', CLI_MAIN];
  const child = spawn(process.execPath, [...program, 'serve', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let stdout = '';
  let stderr = '';
  const keep = (d: Buffer): void => {
    out = (out + d.toString()).slice(-keepChars);
  };
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
    keep(d);
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const urls = await new Promise<{ http: string; ws: string }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not start within ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal}) before listening:\n${out}`));
    };
    child.once('exit', onExit);
    child.stderr?.on('data', (d: Buffer) => {
      keep(d);
      const m = /listening on (http:\/\/[^\s]+) \(WebSocket (ws:\/\/[^\s)]+)\)/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve({ http: m[1]!, ws: m[2]! });
      }
    });
  });
  return { child, httpUrl: urls.http, wsUrl: urls.ws, output: () => out, stdout: () => stdout, stderr: () => stderr, exited };
}
