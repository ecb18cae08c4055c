/**
 * Child process of apply-failure.test.ts (the test runner fails a test on any unhandled
 * rejection, lmdb-js's known leak included, so the engine runs here under the same
 * crash-only rule as `pobox serve`: an unhandled rejection other than the answered-commit
 * leak exits 70). With --worker the engine runs in a worker thread (WorkerStore), whose
 * thread keeps the same rule. Usage:
 * `node --import tsx apply-failure-child.ts <tmpfs mount> <dir off the tmpfs> [--worker]`.
 * Prints one JSON line: what it saw.
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { installCrashOnly } from '../../../src/cli/crash-only.js';
import { PoboxError } from '../../../src/core/errors.js';
import type { AppendItem, MailboxStore } from '../../../src/store/contract.js';
import { answeredCommitLeak } from '../../../src/store/lmdb/commit-leak.js';
import { openLmdbStore, type WalEvent } from '../../../src/store/lmdb/index.js';
import { openWorkerStore } from '../../../src/store/worker/host.js';
import { fillFileSystem } from '../../support/tmpfs.js';
import { waitFor } from '../../support/wait.js';

const [mnt, offTmpfs, mode] = process.argv.slice(2);
if (!mnt || !offTmpfs) throw new Error('usage: apply-failure-child.ts <tmpfs mount> <dir off the tmpfs>');

let leaks = 0;
installCrashOnly(() => undefined, {
  knownLeak: (err) => {
    const known = answeredCommitLeak(err);
    if (known) leaks++;
    return known;
  },
});

const LIMITS = { maxMailboxMessages: 100_000, maxMailboxBytes: 1 << 30 };
const USERS = 20;
const PER_USER = 20;
const BODY = 'x'.repeat(1500);
const item = (to: string, i: number): AppendItem => ({ id: `${to}-m${i}`, from: 'alice', to, body: `${i} ${BODY}`, bytes: BODY.length + 6, sentAt: 1, expiresAt: 1e15 });

async function unavailable(store: MailboxStore): Promise<string | undefined> {
  try {
    await store.stats('u0', 2);
    return undefined;
  } catch (err) {
    if (err instanceof PoboxError && err.code === 'UNAVAILABLE') return err.message;
    throw err;
  }
}

async function assertAllThere(store: MailboxStore): Promise<void> {
  for (let u = 0; u < USERS; u++) {
    const page = await store.read({ user: `u${u}`, device: 'phone', afterSeq: 0, limit: 1000, now: 2 });
    assert.deepEqual(
      page.messages.map((m) => [m.seq, m.id, m.body]),
      Array.from({ length: PER_USER }, (_, i) => [i + 1, `u${u}-m${i}`, `${i} ${BODY}`]),
      `u${u}'s mailbox`,
    );
  }
}

// The log lives off the tmpfs, LMDB on it: only LMDB's commits meet the full disk.
const dir = join(mnt, 'db');
mkdirSync(dir);
mkdirSync(join(offTmpfs, 'wal'));
symlinkSync(join(offTmpfs, 'wal'), join(dir, 'wal'));
const events: WalEvent[] = [];
// Applies come from the timer only, always in chunks of 2 writes: hundreds of turns each.
const wal = { applyIntervalMs: 30, maxResidentMessages: 1_000_000, maxResidentBytes: 1 << 30, applyChunk: 2, applyChunkMaxBusy: 1 };
const onEvent = (e: WalEvent): void => void events.push(e);
// The devices first, applied by a clean close: the store below then has nothing to apply
// until the sends, so the first apply it reports is theirs, against the full disk.
const setup = await openLmdbStore({ path: dir });
for (let u = 0; u < USERS; u++) await setup.registerDevice(`u${u}`, 'phone', 'auto', 1, 8);
await setup.close();
let store: MailboxStore =
  mode === '--worker'
    ? await openWorkerStore({ lmdb: { path: dir, wal, walEvents: true } }, { onWalEvent: onEvent })
    : await openLmdbStore({ path: dir, wal: { ...wal, onEvent } });
fillFileSystem(join(mnt, 'filler'), 0);

const accepted = await Promise.all(
  Array.from({ length: USERS }, (_, u) =>
    store.append(
      Array.from({ length: PER_USER }, (_, i) => item(`u${u}`, i)),
      LIMITS,
    ),
  ),
);
assert.ok(
  accepted.flat().every((o) => o.ok && !o.duplicate),
  'every send accepted (the log has room)',
);

const refusal = await waitFor(() => unavailable(store), 'a refusal after the failed apply');
const whileFull = [...events];

rmSync(join(mnt, 'filler'));
await waitFor(async () => (await unavailable(store)) === undefined, 'recovery in place once the disk has room', 30_000);
await assertAllThere(store);
await waitFor(() => events.includes('applied'), 'an apply that succeeds');
await store.close();

store = await openLmdbStore({ path: dir, wal: { applyIntervalMs: 3_600_000 } });
await assertAllThere(store);
await store.close();
process.stdout.write(`${JSON.stringify({ refusal, whileFull, leaks })}\n`);
