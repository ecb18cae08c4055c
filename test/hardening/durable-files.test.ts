/**
 * The generated JWT secret survives a power loss at any moment: every call ensureSecretFile
 * makes is recorded (on a real temp dir), then replayed against a model of a filesystem
 * that keeps only what was fsync'd (file bytes after an fsync of the file, directory
 * entries after an fsync of the directory). At every crash point the secret must be
 * either absent (a restart makes a new one, no token was issued yet) or complete, and
 * once ensureSecretFile returns it must be complete.
 *
 * The same model, fed the old sequence (open, write, close: no fsync), finds the empty or
 * missing file that issue 13 reported, so this test can fail.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { realFs, type FileSystem } from '../../src/core/durable-files.js';
import { ensureSecretFile, SECRET_FILE } from '../../src/gateway/auth.js';

type Call =
  | { op: 'open'; path: string; flags: string; fd: number }
  | { op: 'write'; fd: number; data: string }
  | { op: 'fsync'; fd: number }
  | { op: 'close'; fd: number }
  | { op: 'link'; from: string; to: string }
  | { op: 'unlink'; path: string }
  | { op: 'mkdir'; path: string };

function recording(calls: Call[]): FileSystem {
  return {
    ...realFs,
    openSync(path, flags, mode) {
      const fd = realFs.openSync(path, flags, mode);
      calls.push({ op: 'open', path: resolve(path), flags, fd });
      return fd;
    },
    writeSync(fd, data) {
      calls.push({ op: 'write', fd, data });
      return realFs.writeSync(fd, data);
    },
    fsyncSync(fd) {
      calls.push({ op: 'fsync', fd });
      realFs.fsyncSync(fd);
    },
    closeSync(fd) {
      calls.push({ op: 'close', fd });
      realFs.closeSync(fd);
    },
    linkSync(from, to) {
      realFs.linkSync(from, to);
      calls.push({ op: 'link', from: resolve(from), to: resolve(to) });
    },
    unlinkSync(path) {
      realFs.unlinkSync(path);
      calls.push({ op: 'unlink', path: resolve(path) });
    },
    mkdirSync(path, opts) {
      realFs.mkdirSync(path, opts);
      calls.push({ op: 'mkdir', path: resolve(path) });
    },
  };
}

/**
 * What a power loss after the first `n` calls leaves at `target`: undefined when the name is
 * gone (or a directory on its path is), else the file's synced bytes. Directories that
 * existed before the calls are durable.
 */
function afterPowerLoss(calls: readonly Call[], n: number, target: string): string | undefined {
  interface Inode {
    dir: boolean;
    data: string;
    synced: string;
    entries: Map<string, Inode>;
    syncedEntries: Map<string, Inode>;
  }
  const inodes = new Map<string, Inode>(); // by path, as seen while running
  const fds = new Map<number, Inode>();
  const node = (dir: boolean): Inode => ({ dir, data: '', synced: '', entries: new Map(), syncedEntries: new Map() });
  const parentOf = (path: string): Inode => {
    const dir = dirname(path);
    let p = inodes.get(dir);
    if (!p) {
      // existed before: durable, and so is its own entry in its parent
      p = node(true);
      inodes.set(dir, p);
    }
    return p;
  };
  for (const c of calls.slice(0, n)) {
    switch (c.op) {
      case 'mkdir': {
        const d = node(true);
        inodes.set(c.path, d);
        parentOf(c.path).entries.set(c.path, d);
        break;
      }
      case 'open': {
        let f = inodes.get(c.path);
        if (!f && c.flags === 'r') {
          f = node(true); // a directory that existed before, opened to fsync it
          inodes.set(c.path, f);
        } else if (!f) {
          f = node(false);
          inodes.set(c.path, f);
          parentOf(c.path).entries.set(c.path, f);
        }
        fds.set(c.fd, f);
        break;
      }
      case 'write':
        fds.get(c.fd)!.data += c.data;
        break;
      case 'fsync': {
        const f = fds.get(c.fd)!;
        f.synced = f.data;
        f.syncedEntries = new Map(f.entries);
        break;
      }
      case 'close':
        fds.delete(c.fd);
        break;
      case 'link': {
        const f = inodes.get(c.from)!;
        inodes.set(c.to, f);
        parentOf(c.to).entries.set(c.to, f);
        break;
      }
      case 'unlink':
        parentOf(c.path).entries.delete(c.path);
        inodes.delete(c.path);
        break;
    }
  }
  // Every name on the path that these calls created must be a synced entry of its parent;
  // the directories above them existed before and are durable.
  const created = (p: string): boolean =>
    calls.some((c) => (c.op === 'mkdir' && c.path === p) || (c.op === 'open' && c.flags !== 'r' && c.path === p) || (c.op === 'link' && c.to === p));
  const chain: string[] = [];
  for (let p = resolve(target); created(p); p = dirname(p)) chain.unshift(p);
  if (chain.length === 0) return undefined;
  let current: Inode | undefined;
  for (const p of chain) {
    current = inodes.get(dirname(p))?.syncedEntries.get(p);
    if (!current) return undefined;
  }
  return current?.synced;
}

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});
function tempRoot(): string {
  const r = mkdtempSync(join(tmpdir(), 'pobox-durable-'));
  roots.push(r);
  return r;
}

describe('durable files', () => {
  it('a generated secret is absent or complete after a power loss at any call, and complete once returned', () => {
    const root = tempRoot();
    const dataDir = join(root, 'a', 'b', 'data');
    const calls: Call[] = [];
    const { secret, path, created } = ensureSecretFile(dataDir, recording(calls));
    assert.equal(created, true);
    assert.equal(readFileSync(path, 'utf8'), secret + '\n');
    assert.equal(fs.statSync(path).mode & 0o777, 0o600);
    assert.ok(calls.length > 0);
    for (let n = 0; n <= calls.length; n++) {
      const left = afterPowerLoss(calls, n, join(dataDir, SECRET_FILE));
      assert.ok(left === undefined || left === secret + '\n', `power loss after call ${n} (${calls[n - 1]?.op}) leaves ${JSON.stringify(left)}`);
    }
    assert.equal(afterPowerLoss(calls, calls.length, join(dataDir, SECRET_FILE)), secret + '\n', 'the secret is durable once returned');
    // No temporary name is left behind in the data dir.
    assert.deepEqual(fs.readdirSync(dataDir), [SECRET_FILE]);
  });

  it('the model finds the unsynced write issue 13 reported (open, write, close)', () => {
    const root = tempRoot();
    const calls: Call[] = [];
    const rec = recording(calls);
    const path = join(root, SECRET_FILE);
    const fd = rec.openSync(path, 'wx', 0o600);
    rec.writeSync(fd, 'x'.repeat(44));
    rec.closeSync(fd);
    assert.equal(afterPowerLoss(calls, calls.length, path), undefined, 'without fsync of the directory the name is not durable');
    // With the name synced but not the bytes: the empty file of the report.
    const dirFd = rec.openSync(root, 'r');
    rec.fsyncSync(dirFd);
    rec.closeSync(dirFd);
    assert.equal(afterPowerLoss(calls, calls.length, path), '', 'without fsync of the file its bytes are lost');
  });

  it('a second start reads the secret the first one made, and a racing creator is not overwritten', () => {
    const dataDir = join(tempRoot(), 'data');
    const first = ensureSecretFile(dataDir);
    const second = ensureSecretFile(dataDir);
    assert.equal(second.created, false);
    assert.equal(second.secret, first.secret);
    // A creator that finds the name taken at link time reads the winner's secret.
    const racing = join(tempRoot(), 'data');
    const loser: FileSystem = {
      ...realFs,
      linkSync(from, to) {
        fs.writeFileSync(to, 'w'.repeat(43) + '\n', { mode: 0o600 });
        realFs.linkSync(from, to);
      },
    };
    const r = ensureSecretFile(racing, loser);
    assert.equal(r.secret, 'w'.repeat(43));
    assert.equal(r.created, false);
    assert.deepEqual(fs.readdirSync(racing), [SECRET_FILE]);
  });
});
