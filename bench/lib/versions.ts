/** Versions of the things a benchmark measured against, for the machine record. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_DIR } from './results.js';

/** The installed version of an npm package (read from its package.json, whatever its exports say). */
export function packageVersion(name: string): string {
  try {
    const pkg = JSON.parse(readFileSync(path.join(REPO_DIR, 'node_modules', name, 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** First line of `cmd args` (e.g. `redis-server --version`), or undefined when not installed. */
export function commandVersion(cmd: string, args: string[]): string | undefined {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
    return out.split('\n')[0]?.trim();
  } catch (err) {
    // java -version prints to stderr
    const e = err as { stderr?: string };
    return e.stderr?.split('\n')[0]?.trim() || undefined;
  }
}
