/**
 * Real `pobox serve` processes for the fault tests, each with its own flags (so one node
 * can reach Redis through a proxy the test cuts), over one DynamoDB Local table.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mintToken } from '../../src/gateway/auth.js';
import { spawnServeProcess } from '../support/serve-process.js';

export interface ServeNode {
  readonly child: ChildProcess;
  readonly httpUrl: string;
  readonly wsUrl: string;
  output(): string;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** SIGTERM (SIGKILL after 10 s) and wait for the exit. */
  stop(): Promise<void>;
}

export interface ServeNodeOptions {
  dir: string;
  name: string;
  secret: string;
  /** DynamoDB Local; without it the node uses the embedded lmdb engine in its data dir. */
  dynamodbEndpoint?: string;
  dynamodbTable?: string;
  /** Default: memory. */
  bus?: string;
  /** Default: <dir>/<name>. */
  dataDir?: string;
  /** Server config (JSON file), e.g. { session: { safetyPollMs: 2000 } }. */
  config?: object;
}

export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function userToken(secret: string, user: string, device: string): Promise<string> {
  return mintToken({ secret, user, device });
}

/** POST a message to bob through `node` as the holder of `token`: the status, and the code of a refusal. */
export async function sendToBob(node: ServeNode, token: string, id: string, body = `body of ${id}`): Promise<{ status: number; code?: string }> {
  const res = await fetch(`${node.httpUrl}/v1/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ to: 'bob', id, body }),
    signal: AbortSignal.timeout(60_000),
  });
  const json = (await res.json()) as { error?: { code: string } };
  return { status: res.status, ...(json.error ? { code: json.error.code } : {}) };
}

/** GET /readyz of `node`: the status, and the reason of a 503. */
export async function readyz(node: ServeNode): Promise<{ status: number; message: string }> {
  const res = await fetch(`${node.httpUrl}/readyz`, { signal: AbortSignal.timeout(60_000) });
  const json = (await res.json()) as { error?: { message: string } };
  return { status: res.status, message: json.error?.message ?? '' };
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startServeNode(o: ServeNodeOptions): Promise<ServeNode> {
  const configFile = join(o.dir, `${o.name}.json`);
  await writeFile(configFile, JSON.stringify(o.config ?? {}));
  const args = ['--port', '0', '--host', '127.0.0.1', '--config', configFile, '--data-dir', o.dataDir ?? join(o.dir, o.name), '--no-demo'];
  if (o.dynamodbEndpoint && o.dynamodbTable) args.push('--store', 'dynamodb', '--dynamodb-endpoint', o.dynamodbEndpoint, '--dynamodb-table', o.dynamodbTable);
  args.push('--bus', o.bus ?? 'memory', '--log-level', 'warn');
  const node = await spawnServeProcess(o.name, args, { ...process.env, POBOX_JWT_SECRETS: o.secret, AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local' });
  const { child } = node;
  return {
    ...node,
    async kill() {
      const gone = exited(child);
      child.kill('SIGKILL');
      await gone;
    },
    async stop() {
      const gone = exited(child);
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(t);
    },
  };
}
