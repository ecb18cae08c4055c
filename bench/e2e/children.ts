/**
 * Child processes of the e2e benchmark: forked through bash so each can raise its own
 * open-files limit (`ulimit -n`) as far as the hard limit allows, with an IPC channel,
 * and registered for cleanup (SIGTERM, then SIGKILL) however the run ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { onCleanup } from '../lib/cleanup.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export interface Child {
  proc: ChildProcess;
  /** Send a message and wait for the next reply of one of these types (an `error` reply rejects). */
  ask<T extends { type: string }>(msg: unknown, types: string[], timeoutMs?: number): Promise<T>;
  next<T extends { type: string }>(types: string[], timeoutMs?: number): Promise<T>;
  stop(): Promise<void>;
}

export function forkChild(script: string, env: Record<string, string>, nodeFlags: string[] = []): Child {
  // Try a high limit first; if the hard limit is lower (containers), take the hard limit.
  const raise = 'ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; export BENCH_NOFILE="$(ulimit -n)"; exec "$0" "$@"';
  const proc = spawn('bash', ['-c', raise, process.execPath, '--import', 'tsx', ...nodeFlags, path.join(HERE, script)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...env },
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const stop = onCleanup(`child ${script} (${proc.pid})`, async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  });
  const next = <T extends { type: string }>(types: string[], timeoutMs = 600_000): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${script}: no ${types.join('/')} reply within ${timeoutMs} ms`));
      }, timeoutMs);
      const onMessage = (m: { type: string; message?: string }): void => {
        if (m.type === 'error') {
          cleanup();
          reject(new Error(`${script}: ${m.message}`));
        } else if (types.includes(m.type)) {
          cleanup();
          resolve(m as T);
        }
      };
      const onExit = (code: number | null, sig: string | null): void => {
        cleanup();
        reject(new Error(`${script} exited (${code ?? sig}) while we waited for ${types.join('/')}`));
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        proc.off('message', onMessage);
        proc.off('exit', onExit);
      };
      proc.on('message', onMessage);
      proc.once('exit', onExit);
    });
  return {
    proc,
    next,
    ask: <T extends { type: string }>(msg: unknown, types: string[], timeoutMs?: number): Promise<T> => {
      const p = next<T>(types, timeoutMs);
      proc.send(msg as object);
      return p;
    },
    stop,
  };
}
