/**
 * A real Redis Cluster for tests: `masters` redis-server processes (plus `replicas` per
 * master) on free loopback ports, each in its own temp dir with persistence off, joined
 * by `redis-cli --cluster create`. A node can be SIGKILLed and started again on the same
 * ports (its nodes.conf brings it back into the cluster). `dispose()` kills every
 * process and removes the temp dirs.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.js';
import { launchRedisServer } from './redis-server.js';

const run = promisify(execFile);

export interface ClusterNode {
  readonly port: number;
  /** "127.0.0.1:port", as the cluster names the node. */
  readonly key: string;
  readonly running: boolean;
  /** The redis-server process id while it runs (benchmarks read its CPU time). */
  readonly pid: number | undefined;
}

export interface RedisClusterHandle {
  readonly nodes: readonly ClusterNode[];
  /** `redis-cluster://127.0.0.1:p1,127.0.0.1:p2,...` with an optional prefix. */
  url(prefix?: string): string;
  /** The node that is master of `slot` now (asks the cluster). */
  masterOf(slot: number): Promise<ClusterNode>;
  /** SIGKILL a node and wait for it to be gone. */
  kill(index: number): Promise<void>;
  /** Start a killed node again (same ports, same nodes.conf). */
  restart(index: number): Promise<void>;
  /** Until every running node reports cluster_state:ok. */
  waitOk(timeoutMs?: number): Promise<void>;
  dispose(): Promise<void>;
}

export interface RedisClusterOptions {
  masters?: number;
  /** Replicas per master (0 keeps the test light; a killed master then waits for its restart). */
  replicas?: number;
  /** cluster-node-timeout: how long until a silent node counts as failed. */
  nodeTimeoutMs?: number;
}

async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 10_000 });
  return stdout;
}

export async function startRedisCluster(opts: RedisClusterOptions = {}): Promise<RedisClusterHandle> {
  const masters = opts.masters ?? 3;
  const total = masters * (1 + (opts.replicas ?? 0));
  const base = await mkdtemp(join(tmpdir(), 'pobox-redis-cluster-'));
  const ports = await distinctFreePorts(total * 2);
  const procs: Array<ChildProcess | undefined> = new Array(total).fill(undefined);
  const nodes = Array.from({ length: total }, (_, i) => {
    const port = ports[i]!;
    return {
      port,
      busPort: ports[total + i]!,
      dir: join(base, `node${i}`),
      key: `127.0.0.1:${port}`,
      get running() {
        return procs[i] !== undefined;
      },
      get pid() {
        return procs[i]?.pid;
      },
    };
  });

  const launch = (i: number): Promise<void> => {
    const n = nodes[i]!;
    const args = [
      '--port',
      String(n.port),
      '--cluster-port',
      String(n.busPort),
      '--bind',
      '127.0.0.1',
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      join(n.dir, 'nodes.conf'),
      '--cluster-node-timeout',
      String(opts.nodeTimeoutMs ?? 1000),
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
      '--dir',
      n.dir,
      '--logfile',
      '',
    ];
    const { proc, ready } = launchRedisServer(args, `cluster node ${n.key}`);
    procs[i] = proc;
    proc.once('exit', () => {
      if (procs[i] === proc) procs[i] = undefined;
    });
    return ready;
  };

  const kill = async (i: number): Promise<void> => {
    const proc = procs[i];
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGKILL');
    await gone;
  };

  const dispose = async (): Promise<void> => {
    await Promise.all(nodes.map((_, i) => kill(i)));
    await rm(base, { recursive: true, force: true });
  };

  const waitOk = async (timeoutMs = 30_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const states = await Promise.all(
        nodes
          .filter((n) => n.running)
          .map((n) =>
            cli(n.port, 'cluster', 'info').then(
              (s) => /cluster_state:ok/.test(s),
              () => false,
            ),
          ),
      );
      if (states.every(Boolean)) return;
      if (Date.now() > deadline) throw new Error('redis cluster did not reach cluster_state:ok');
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  try {
    await Promise.all(nodes.map((n) => mkdir(n.dir, { recursive: true })));
    await Promise.all(nodes.map((_, i) => launch(i)));
    await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => n.key), '--cluster-replicas', String(opts.replicas ?? 0), '--cluster-yes'], { timeout: 60_000 });
    await waitOk();
  } catch (err) {
    await dispose();
    throw err;
  }

  return {
    nodes,
    url: (prefix) => `redis-cluster://${nodes.map((n) => n.key).join(',')}${prefix === undefined ? '' : `?prefix=${encodeURIComponent(prefix)}`}`,
    async masterOf(slot) {
      const live = nodes.find((n) => n.running);
      if (!live) throw new Error('no cluster node is running');
      // CLUSTER SHARDS would do on 7.2; 7.0 has CLUSTER SLOTS' nested arrays, so read NODES.
      const text = await cli(live.port, 'cluster', 'nodes');
      for (const line of text.split('\n')) {
        const [, addr, flags, , , , , , ...ranges] = line.split(' ');
        if (!addr || !flags?.includes('master') || flags.includes('fail')) continue;
        const port = Number(addr.split('@')[0]!.split(':')[1]);
        for (const r of ranges) {
          const [lo, hi] = r.split('-').map(Number);
          if (lo !== undefined && slot >= lo && slot <= (hi ?? lo)) return nodes.find((n) => n.port === port)!;
        }
      }
      throw new Error(`no master owns slot ${slot}`);
    },
    kill,
    restart: launch,
    waitOk,
    dispose,
  };
}
