/**
 * A cluster of real `pobox serve` processes, started the way an operator would:
 * `pobox serve --store dynamodb ... --bus redis://...`, one process per node.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mintToken } from '../../src/gateway/auth.js';
import { spawnServeProcess } from '../support/serve-process.js';
import type { Cluster } from './scenarios.js';

export interface NodeProcess {
  readonly index: number;
  readonly child: ChildProcess;
  /** http://127.0.0.1:port */
  readonly httpUrl: string;
  readonly wsUrl: string;
  /** What the process wrote, for failure messages. */
  output(): string;
}

export interface ProcessCluster extends Cluster {
  readonly procs: NodeProcess[];
  /** SIGKILL one node and wait for it to be gone. */
  kill(index: number): Promise<void>;
  /** True when the node answers /readyz with 200 (store usable) and reports its bus healthy. */
  ready(index: number): Promise<boolean>;
  /** The node's GET /metrics text (with the cluster's admin key). */
  metrics(index: number): Promise<string>;
  close(): Promise<void>;
}

export interface ProcessClusterOptions {
  nodes: number;
  dir: string;
  dynamodbEndpoint: string;
  dynamodbTable: string;
  bus: string;
  /** Session poll interval while the bus is down. */
  pollIntervalMs: number;
}

async function startNode(index: number, args: string[], env: NodeJS.ProcessEnv): Promise<NodeProcess> {
  const node = await spawnServeProcess(`node ${index}`, args, env, { keepChars: 20_000 });
  return { index, ...node };
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startProcessCluster(opts: ProcessClusterOptions): Promise<ProcessCluster> {
  const secret = randomBytes(32).toString('base64url');
  const configFile = join(opts.dir, 'pobox.json');
  await writeFile(configFile, JSON.stringify({ session: { pollIntervalMs: opts.pollIntervalMs } }));
  const adminKey = `admin-${randomBytes(16).toString('hex')}`;
  const env = { ...process.env, POBOX_JWT_SECRETS: secret, POBOX_API_KEYS: JSON.stringify([{ key: adminKey, name: 'test-admin', scopes: ['admin'] }]) };
  const starts: Promise<NodeProcess>[] = [];
  for (let i = 0; i < opts.nodes; i++) {
    const args = [
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--config',
      configFile,
      '--data-dir',
      join(opts.dir, `node${i}`),
      '--store',
      'dynamodb',
      '--dynamodb-endpoint',
      opts.dynamodbEndpoint,
      '--dynamodb-table',
      opts.dynamodbTable,
      '--bus',
      opts.bus,
      '--log-level',
      'warn',
    ];
    starts.push(startNode(i, args, env));
  }
  const settled = await Promise.allSettled(starts);
  const procs = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const stopAll = async (): Promise<void> => {
    await Promise.all(
      procs.map(async (p) => {
        if (p.child.exitCode !== null || p.child.signalCode !== null) return;
        const gone = exited(p.child);
        p.child.kill('SIGTERM');
        const timer = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
        await gone;
        clearTimeout(timer);
      }),
    );
  };
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) {
    await stopAll();
    throw (failed as PromiseRejectedResult).reason;
  }
  return {
    procs,
    nodes: procs.map((p) => p.wsUrl),
    token: (user, device) => mintToken({ secret, user, device }),
    async kill(index) {
      const p = procs[index]!;
      const gone = exited(p.child);
      p.child.kill('SIGKILL');
      await gone;
    },
    async ready(index) {
      try {
        const res = await fetch(`${procs[index]!.httpUrl}/readyz`, { signal: AbortSignal.timeout(5000) });
        const body = (await res.json().catch(() => ({}))) as { busHealthy?: boolean };
        return res.status === 200 && body.busHealthy === true;
      } catch {
        return false;
      }
    },
    async metrics(index) {
      const res = await fetch(`${procs[index]!.httpUrl}/metrics`, { headers: { authorization: `Bearer ${adminKey}` }, signal: AbortSignal.timeout(10_000) });
      if (res.status !== 200) throw new Error(`/metrics of node ${index}: ${res.status}`);
      return res.text();
    },
    close: stopAll,
  };
}
