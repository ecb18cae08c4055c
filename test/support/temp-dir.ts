/** The one temp dir helper of the tests: a fresh directory under the OS temp dir, and how to remove it. */
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempDir {
  readonly path: string;
  remove(): Promise<void>;
}

export function tempDir(prefix = 'pobox-test-'): TempDir {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** Runs `fn` in a fresh temp dir and removes the dir afterwards, whether `fn` passed or threw. */
export async function withTempDir(fn: (dir: string) => Promise<void>, prefix?: string): Promise<void> {
  const dir = tempDir(prefix);
  try {
    await fn(dir.path);
  } finally {
    await dir.remove();
  }
}
