/**
 * A small tmpfs to fill up, for the full-disk tests: mounted on `mnt` inside a fresh temp
 * dir, filled to within some bytes of full, unmounted and removed afterwards. Mounting needs
 * root (CI runs as root); where it is refused, `mountTmpfs` answers the reason, and the
 * test skips with it.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, fsyncSync, mkdirSync, openSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './temp-dir.js';

export interface Tmpfs {
  /** The temp dir holding the mount point (room for files that must not fill up). */
  readonly root: string;
  /** The tmpfs. */
  readonly mnt: string;
  /** Write `name` in the tmpfs until the file system is within `leave` bytes of full. */
  fill(name: string, leave: number): void;
  /** Unmount (lazily if it is busy) and remove the temp dir. */
  remove(): Promise<void>;
}

export async function mountTmpfs(bytes: number, prefix: string): Promise<Tmpfs | { refused: string }> {
  const dir = tempDir(prefix);
  const mnt = join(dir.path, 'mnt');
  mkdirSync(mnt);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (err) {
    await dir.remove();
    return { refused: `mount -t tmpfs refused: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}` };
  }
  return {
    root: dir.path,
    mnt,
    fill: (name, leave) => fillFileSystem(join(mnt, name), leave),
    remove: async () => {
      try {
        execFileSync('umount', [mnt], { stdio: 'pipe' });
      } catch {
        execFileSync('umount', ['-l', mnt], { stdio: 'pipe' });
      }
      await dir.remove();
    },
  };
}

/** Write `path` until its file system is within `leave` bytes of full. */
export function fillFileSystem(path: string, leave: number): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 7);
  try {
    for (;;) {
      const s = statfsSync(join(path, '..'));
      const free = s.bavail * s.bsize;
      if (free <= leave) break;
      try {
        writeSync(fd, chunk, 0, Math.min(chunk.length, free - leave));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw err;
      }
    }
    try {
      fsyncSync(fd);
    } catch {
      // tmpfs has nothing to sync
    }
  } finally {
    closeSync(fd);
  }
}
