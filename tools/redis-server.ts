/**
 * A private redis-server for tests that must stop Redis (the shared one on 6379 must
 * stay up for everyone else). Runs in its own temp dir on a random loopback port, with
 * persistence off, and can be stopped and started again on the same port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';

export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly running: boolean;
  /** Start again (same port) after `stop()`. */
  start(): Promise<void>;
  /** SIGTERM and wait for the process to exit. */
  stop(): Promise<void>;
  /** Freeze the process (SIGSTOP): connections stay open but nothing answers. */
  pause(): void;
  resume(): void;
  /** Stop and delete the temp dir. */
  dispose(): Promise<void>;
}

export async function startRedisServer(opts: { readyTimeoutMs?: number } = {}): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'pobox-redis-'));
  const port = await freePort();
  const readyTimeoutMs = opts.readyTimeoutMs ?? 10_000;
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', '', '--loglevel', 'notice'];
    const { proc, ready } = launchRedisServer(args, `redis-server on ${port}`, readyTimeoutMs);
    child = proc;
    proc.once('exit', () => {
      if (child === proc) child = undefined;
    });
    await ready;
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGCONT');
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get running() {
      return child !== undefined;
    },
    start: launch,
    stop,
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    dispose: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Start one `redis-server` with `args`; `ready` resolves once it accepts connections and
 * rejects (naming `what`, with its output) if it exits first or is not ready in time.
 */
export function launchRedisServer(args: readonly string[], what: string, readyTimeoutMs = 10_000): { proc: ChildProcess; ready: Promise<void> } {
  const proc = spawn('redis-server', [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const ready = new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${what} not ready within ${readyTimeoutMs} ms:\n${out}`));
    }, readyTimeoutMs);
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        proc.stdout?.off('data', onData);
        proc.stdout?.resume();
        resolve();
      }
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', (c: Buffer) => (out += c.toString()));
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code ?? signal}) before it was ready:\n${out}`));
    });
  });
  return { proc, ready };
}
