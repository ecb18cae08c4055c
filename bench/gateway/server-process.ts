/**
 * The gateway server in its own process (bench/gateway/server-child.ts), for benchmarks
 * that load it from another: started with a server config, stopped gracefully, with its
 * CPU time, memory and (DynamoDB engine) capacity counters readable from outside.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { ServerConfigInput } from '../../src/gateway/config.js';
import { onCleanup } from '../lib/cleanup.js';
import { cpuSeconds } from '../lib/proc.js';
import { BENCH_DIR } from '../lib/results.js';
import { round } from '../lib/stats.js';

export interface ServerHandle {
  /** http://host:port (the HTTP API) and ws://host:port/ws. */
  url: string;
  wsUrl: string;
  pid: number;
  store: string;
  bus: string;
  /** CPU seconds (user + system) the server process has used so far. */
  cpuSeconds(): number;
  /** The store's capacity counters (DynamoDB engine only; null otherwise). */
  capacity(): Promise<CapacitySnapshot | null>;
  /** Resident set size of the server process now, and its peak so far (MiB). */
  memory(): { rssMiB: number; peakRssMiB: number };
  /** Shut the server down gracefully and wait for it to exit. */
  stop(): Promise<void>;
}

/** What the server child reports for the DynamoDB engine (bench/gateway/server-child.ts). */
export interface CapacitySnapshot {
  /** As DynamoDB reported them (ReturnConsumedCapacity TOTAL). */
  reported: { readUnits: number; writeUnits: number; requests: number; retries: number };
  /** Modelled from AWS's billing rules on the same requests (bench/lib/dynamodb-billing.ts). */
  billed: { read: number; write: number };
  counters: { keysRead: number; keysWritten: number; keysDeleted: number };
}

export interface ServerChildOptions {
  /** Extra node flags for the child (e.g. --trace-gc). */
  nodeFlags?: string[];
  /** Every line the child prints on stdout that is not one of its own reports (e.g. --trace-gc's). */
  onOutput?: (line: string) => void;
}

export async function startServerChild(config: ServerConfigInput, cpuProfDir?: string, opts: ServerChildOptions = {}): Promise<ServerHandle> {
  const script = path.join(BENCH_DIR, 'gateway', 'server-child.ts');
  // --cpu-prof writes the profile when the child exits (it exits on SIGTERM after a graceful close).
  const profFlags = cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : [];
  const child: ChildProcess = spawn(process.execPath, [...profFlags, ...(opts.nodeFlags ?? []), '--import', 'tsx', script, JSON.stringify(config)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await once(child, 'exit');
    clearTimeout(timer);
  };
  onCleanup('gateway server process', stop);
  const lines = createInterface({ input: child.stdout! });
  const ready = await new Promise<{ url: string; wsUrl: string; store: string; bus: string }>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`gateway server exited with ${code} before it was ready`)));
    lines.on('line', (line) => {
      if (line.startsWith('READY ')) resolve(JSON.parse(line.slice(6)) as { url: string; wsUrl: string; store: string; bus: string });
    });
  });
  // `capacity` requests on the child's stdin are answered in order, one CAPACITY line each.
  const waiting: Array<(c: CapacitySnapshot | null) => void> = [];
  lines.on('line', (line) => {
    if (line.startsWith('CAPACITY ')) waiting.shift()?.(JSON.parse(line.slice(9)) as CapacitySnapshot | null);
    else if (!line.startsWith('READY ')) opts.onOutput?.(line);
  });
  const capacity = (): Promise<CapacitySnapshot | null> =>
    new Promise((resolve, reject) => {
      if (child.exitCode !== null || child.signalCode !== null) return reject(new Error('gateway server process has exited'));
      waiting.push(resolve);
      child.stdin!.write('capacity\n');
    });
  const pid = child.pid!;
  const memory = (): { rssMiB: number; peakRssMiB: number } => {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rssMiB: round(kib('VmRSS') / 1024), peakRssMiB: round(kib('VmHWM') / 1024) };
  };
  return { ...ready, pid, cpuSeconds: () => cpuSeconds(pid), capacity, memory, stop };
}
