/**
 * Child process of wal-chunks.test.ts: builds a known state over the embedded engine, then
 * SIGKILLs itself the moment an apply's chunks are durable in LMDB and its last
 * transaction (tombs, sender counters, metas, `applied`) is not yet written. Usage:
 * `node --import tsx staged-crash-writer.ts <dir> setup|crash`.
 */
import { openLmdbStore } from '../../../src/store/lmdb/index.js';
import type { AppendItem } from '../../../src/store/contract.js';

const [dir, step] = process.argv.slice(2);
if (!dir || (step !== 'setup' && step !== 'crash')) throw new Error('usage: staged-crash-writer.ts <dir> setup|crash');

const LIMITS = { maxMailboxMessages: 100_000, maxMailboxBytes: 1 << 30 };
const msg = (to: string, from: string, id: string): AppendItem => ({ id, from, to, body: `body ${id}`, bytes: 5 + id.length, sentAt: 1, expiresAt: 1e15 });
const range = (lo: number, hi: number): number[] => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);

const NEVER = { applyIntervalMs: 3_600_000, maxResidentMessages: 1_000_000, applyChunk: 4, applyChunkMaxBusy: 1 };
if (step === 'setup') {
  // bob's 1..10 from alice, applied (a clean close applies everything).
  const store = await openLmdbStore({ path: dir, wal: NEVER });
  await store.registerDevice('bob', 'phone', 'auto', 1, 8);
  await store.append(
    range(1, 10).map((i) => msg('bob', 'alice', `m${i}`)),
    LIMITS,
  );
  await store.close();
} else {
  const store = await openLmdbStore({
    path: dir,
    wal: {
      ...NEVER,
      onEvent: (e) => {
        if (e === 'staged') process.kill(process.pid, 'SIGKILL');
      },
    },
  });
  await store.ack('bob', 'phone', 3); // deletes 1..3 from LMDB: tombs, in the last transaction
  await store.append(
    range(11, 20).map((i) => msg('bob', 'carol', `m${i}`)),
    LIMITS,
  );
  await store.ack('bob', 'phone', 12); // 4..10 tombs; 11 and 12 never stored (dedupe only)
  await store.append(
    range(21, 30).map((i) => msg('bob', 'carol', `m${i}`)),
    LIMITS,
  );
  await store.append(
    range(1, 5).map((i) => msg('dave', 'carol', `d${i}`)),
    LIMITS,
  );
  await store.close(); // applies: the kill comes from inside
  throw new Error('the apply never reached its last transaction');
}
