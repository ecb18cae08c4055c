/**
 * A private redis-server for the peer benchmark, configured the way a team would run
 * Redis as a durable mailbox: AOF on, `appendfsync always` (fsync before every reply),
 * RDB snapshots off, its own temp dir, a random loopback port. The machine's Redis on
 * 6379 keeps nothing on disk, so it would not be a fair (durable) peer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { onCleanup } from '../lib/cleanup.js';
import { freePort } from '../../tools/free-port.js';
import { tempDir } from '../lib/temp.js';

export interface DurableRedis {
  port: number;
  stop(): Promise<void>;
}

export async function startDurableRedis(): Promise<DurableRedis> {
  const dir = tempDir('redis');
  const port = await freePort();
  const proc: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir.path, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--logfile', '', '--daemonize', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const stopProc = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
  };
  const unregister = onCleanup(`redis-server :${port}`, stopProc);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`redis-server not ready in 10 s:\n${out}`)), 10_000);
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        proc.stdout!.resume();
        resolve();
      }
    });
    proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    exited.then(
      () => reject(new Error(`redis-server exited early:\n${out}`)),
      (err: unknown) => reject(err instanceof Error ? err : new Error(String(err))),
    );
  });
  return {
    port,
    stop: async () => {
      await unregister();
      await dir.remove();
    },
  };
}
