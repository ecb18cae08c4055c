/** Temp directories that are removed by the cleanup registry, even on Ctrl-C. */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onCleanup } from './cleanup.js';

export interface TempDir {
  path: string;
  remove(): Promise<void>;
}

export function tempDir(prefix: string): TempDir {
  const dir = mkdtempSync(path.join(os.tmpdir(), `pobox-bench-${prefix}-`));
  const remove = onCleanup(`temp dir ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  return { path: dir, remove };
}
