/**
 * A real `pobox serve` process for the long runs (fuzz, soak): started from source
 * through tsx on 127.0.0.1 with a free port, a temp data dir and the given credentials,
 * its JSON log lines counted by level and message (error lines are kept as samples), and
 * stopped with SIGTERM (SIGKILL after a grace period) by the cleanup registry however
 * the run ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { onCleanup } from './cleanup.js';
import { REPO_DIR } from './results.js';
import { tempDir } from './temp.js';

export interface ServeProcess {
  proc: ChildProcess;
  pid: number;
  url: string;
  wsUrl: string;
  host: string;
  port: number;
  /** Log lines seen so far, by `level msg` (e.g. `50 request failed`). */
  logCounts: Map<string, number>;
  /** The first error-level (>= 50) lines, verbatim, for the findings. */
  errorLines: string[];
  /** Set once the process exited: code or signal. */
  readonly exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** Resident set size and open file descriptors, from /proc (Linux). */
  /** From /proc: resident memory, split into anonymous (heap, buffers) and file-backed (the mapped LMDB file, code) pages. */
  osStats(): { rssBytes: number; rssAnonBytes: number; rssFileBytes: number; fds: number } | undefined;
  /** SIGTERM, wait for a graceful exit (SIGKILL after `graceMs`); resolves with how it ended. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface ServeOptions {
  secret: string;
  apiKeys: Array<{ key: string; name: string; scopes: Array<'send' | 'admin'> }>;
  logLevel?: string;
  /** Extra config (the JSON config file's content). */
  config?: Record<string, unknown>;
  /** Node flags for the server process, e.g. ['--expose-gc']. */
  nodeFlags?: string[];
  /** Extra environment, e.g. AWS credentials for DynamoDB Local. */
  env?: NodeJS.ProcessEnv;
}

export async function startServeProcess(opts: ServeOptions): Promise<ServeProcess> {
  const data = tempDir('serve');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    POBOX_JWT_SECRETS: opts.secret,
    POBOX_API_KEYS: JSON.stringify(opts.apiKeys),
    POBOX_LOG_LEVEL: opts.logLevel ?? 'warn',
    ...opts.env,
  };
  const args = ['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', data.path, '--no-demo'];
  if (opts.config) {
    const file = path.join(data.path, 'config.json');
    writeFileSync(file, JSON.stringify(opts.config));
    args.push('--config', file);
  }
  const proc = spawn(process.execPath, [...(opts.nodeFlags ?? []), '--import', 'tsx', path.join(REPO_DIR, 'src/cli/main.ts'), ...args], {
    cwd: REPO_DIR,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logCounts = new Map<string, number>();
  const errorLines: string[] = [];
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve({ code, signal });
    }),
  );
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    let level = 0;
    let msg = line.slice(0, 60);
    try {
      const j = JSON.parse(line) as { level?: number; msg?: string };
      level = j.level ?? 0;
      msg = j.msg ?? '';
    } catch {
      // not a log line: counted under level 0
    }
    const key = `${level} ${msg}`;
    logCounts.set(key, (logCounts.get(key) ?? 0) + 1);
    if (level >= 50 && errorLines.length < 50) errorLines.push(line.slice(0, 2000));
  });
  let stderr = '';
  const listening = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pobox serve did not start within 60 s:\n${stderr}`)), 60_000);
    createInterface({ input: proc.stderr! }).on('line', (line) => {
      if (stderr.length < 20_000) stderr += `${line}\n`;
      const m = /listening on (http:\/\/\S+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`pobox serve exited (${code ?? signal}) before listening:\n${stderr}`));
    }, reject);
  });

  const stop = async (graceMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> => {
    if (!exit) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    }
    await data.remove();
    return exit!;
  };
  const unregister = onCleanup(`pobox serve (${proc.pid})`, () => stop());

  const url = await listening;
  const port = Number(new URL(url).port);
  const result: ServeProcess = {
    proc,
    pid: proc.pid!,
    url,
    wsUrl: `${url.replace(/^http/, 'ws')}/ws`,
    host: '127.0.0.1',
    port,
    logCounts,
    errorLines,
    get exit() {
      return exit;
    },
    osStats: () => {
      try {
        const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8');
        const kib = (field: string): number => 1024 * Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
        return { rssBytes: kib('VmRSS'), rssAnonBytes: kib('RssAnon'), rssFileBytes: kib('RssFile') + kib('RssShmem'), fds: readdirSync(`/proc/${proc.pid}/fd`).length };
      } catch {
        return undefined;
      }
    },
    stop: async (graceMs) => {
      const r = await stop(graceMs);
      await unregister();
      return r;
    },
  };
  return result;
}
