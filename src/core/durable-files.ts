/**
 * Files and directories pobox creates, made durable before they are used.
 *
 * A power loss keeps only what was fsync'd: a file's bytes need an fsync of the file, and
 * its name (a new directory entry, a rename) needs an fsync of the directory holding it.
 * Without both, a secret written just before a crash can come back empty or vanish, and a
 * new one is generated silently, invalidating every token already issued.
 *
 * - `ensureDurableDir(dir)`: mkdir -p, then fsync the parent of every directory it created.
 * - `createDurableFile(path, data, mode)`: write a temporary file, fsync it, link it to its
 *   final name (fails with EEXIST when another process won the race: nothing is
 *   overwritten), fsync the directory, remove the temporary name. The final name never
 *   points at a partial file.
 * - `fsyncDir(dir)`: for engines that create their own files (lmdb's data.mdb).
 *
 * Every call goes through a `FileSystem` (node:fs by default) so a test can record the
 * sequence and replay it against a model that drops what was never synced.
 */
import * as nodeFs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';

/** The synchronous calls these helpers make; node:fs satisfies it. */
export interface FileSystem {
  openSync(path: string, flags: string, mode?: number): number;
  writeSync(fd: number, data: string): number;
  fsyncSync(fd: number): void;
  closeSync(fd: number): void;
  linkSync(existing: string, target: string): void;
  unlinkSync(path: string): void;
  mkdirSync(path: string, opts: { mode?: number }): void;
  existsSync(path: string): boolean;
}

export const realFs: FileSystem = {
  openSync: (p, f, m) => nodeFs.openSync(p, f, m),
  writeSync: (fd, d) => nodeFs.writeSync(fd, d),
  fsyncSync: (fd) => nodeFs.fsyncSync(fd),
  closeSync: (fd) => nodeFs.closeSync(fd),
  linkSync: (a, b) => nodeFs.linkSync(a, b),
  unlinkSync: (p) => nodeFs.unlinkSync(p),
  mkdirSync: (p, o) => void nodeFs.mkdirSync(p, o),
  existsSync: (p) => nodeFs.existsSync(p),
};

/** fsync a directory, so the names created or renamed in it survive a power loss. */
export function fsyncDir(dir: string, fs: FileSystem = realFs): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** mkdir -p whose new directories survive a power loss (each parent is fsync'd after). */
export function ensureDurableDir(dir: string, fs: FileSystem = realFs): void {
  const path = resolve(dir);
  if (fs.existsSync(path)) return;
  ensureDurableDir(dirname(path), fs);
  try {
    fs.mkdirSync(path, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return; // someone else created it; they sync it
  }
  fsyncDir(dirname(path), fs);
}

/**
 * Create `path` with `data`, durably and exclusively. Throws an error with code EEXIST when
 * the file already exists (the caller reads the winner's file).
 */
export function createDurableFile(path: string, data: string, mode: number, fs: FileSystem = realFs): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    try {
      fs.writeSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    // link, unlike rename, never replaces an existing file: the first creator wins.
    fs.linkSync(tmp, path);
    fsyncDir(dir, fs);
  } finally {
    try {
      fs.unlinkSync(tmp);
    } catch {
      // already gone; a leftover temporary name is harmless and never read
    }
  }
}
