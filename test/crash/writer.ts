/**
 * The process the crash test kills. It opens the configured store and a post office and
 * sends (and acks) under load until it is SIGKILLed, reporting on stdout, one line each:
 *
 *   R                      the store is open, load starts
 *   A <user> <seq> <id>    `send` RESOLVED for this message (it is durable)
 *   K <user> <upTo>        `ack` of device d RESOLVED (users k*: their only device acks)
 *   X <id> <seq> <got>     a resend of an acknowledged id came back with another seq
 *   P <event>              the lmdb engine's apply cycle: apply, applied, trim, trimmed
 *   F <message>            a call was refused UNAVAILABLE (the store failed and is
 *                          recovering in place); the writer retries it, as a client would
 *
 * stdout to a pipe is synchronous on Linux, so a line written is a line the parent
 * reads, even if the kill comes right after.
 *
 * usage: node --import tsx test/crash/writer.ts <dataDir | store-config-json> <runId>
 *          [--seed N] [--wal tiny] [--report-early] [--worker]
 *
 * --wal tiny (lmdb only) shrinks the write-ahead log's apply interval, resident limit and
 * segment size, so applies and trims run all the time and kills land inside them.
 * --worker runs the engine in a worker thread (src/store/worker/host.ts), its apply
 * cycle's moments forwarded from there. --report-early reports a send BEFORE it resolves.
 * It exists only so the harness can show that its check catches a lost message; the
 * product has no such mode.
 */
import { parseArgs } from 'node:util';
import { openStore } from '../../src/store/open.js';
import { openLmdbStore, type WalEvent } from '../../src/store/lmdb/index.js';
import { openWorkerStore } from '../../src/store/worker/host.js';
import { PostOffice } from '../../src/postoffice/post-office.js';
import { bodyFor } from './bodies.js';
import { seeded } from '../../tools/random.js';
import { installCrashOnly } from '../../src/cli/crash-only.js';
import { answeredCommitLeak } from '../../src/store/lmdb/commit-leak.js';
import { PoboxError } from '../../src/core/errors.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    seed: { type: 'string', default: '1' },
    wal: { type: 'string', default: 'default' },
    'report-early': { type: 'boolean', default: false },
    worker: { type: 'boolean', default: false },
  },
});
const [target, runId = 'r'] = positionals;
if (!target) {
  process.stderr.write('usage: writer.ts <dataDir | store-config-json> <runId> [--seed N] [--wal tiny] [--report-early]\n');
  process.exit(2);
}
const reportEarly = values['report-early'];
const random = seeded(Number(values.seed));
const storeConfig = (target.startsWith('{') ? JSON.parse(target) : { engine: 'lmdb', path: target }) as { engine: string; path?: string };

const SENDERS = Number(process.env.CRASH_SENDERS ?? 48);
const USERS = Number(process.env.CRASH_USERS ?? 300);
/** Users whose one device acks as it reads: their messages are deleted under load. */
const ACK_USERS = Number(process.env.CRASH_ACK_USERS ?? 40);
const DEVICE = 'd';

const write = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

// As `pobox serve` does: an unhandled error ends the process, except lmdb-js's leaked
// promise of a failed commit the engine has answered (src/store/lmdb/commit-leak.ts).
installCrashOnly(() => undefined, { knownLeak: answeredCommitLeak });

/**
 * A call refused UNAVAILABLE is retried after a pause, as a client would (a send with the
 * same id, so a send that was durable after all comes back as a duplicate with its seq).
 * The engine refuses calls while it recovers in place from a failed write; only what
 * finally resolved is reported.
 */
async function retrying<T>(call: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await call();
    } catch (err) {
      if (!(err instanceof PoboxError) || err.code !== 'UNAVAILABLE') throw err;
      write(`F ${err.message.replace(/\s+/g, ' ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
const TINY_WAL = { applyIntervalMs: 15, maxResidentMessages: 150, maxResidentBytes: 64 * 1024, segmentBytes: 16 * 1024, applyChunk: 16, applyChunkMaxBusy: 1 };
const onEvent = (e: WalEvent): void => write(`P ${e}`);
const lmdbWal = values.wal === 'tiny' ? TINY_WAL : {};
const store =
  values.worker && storeConfig.engine === 'lmdb'
    ? await openWorkerStore({ lmdb: { path: storeConfig.path!, wal: lmdbWal, walEvents: true } }, { onWalEvent: onEvent })
    : values.worker
      ? await openStore({ ...storeConfig, worker: true })
      : storeConfig.engine === 'lmdb'
        ? await openLmdbStore({ path: storeConfig.path!, wal: { ...lmdbWal, onEvent } })
        : await openStore(storeConfig);
const po = new PostOffice({
  store,
  sweeper: false,
  config: { limits: { maxMailboxMessages: 1_000_000, maxMailboxBytes: 1 << 30 } },
});
await Promise.all(Array.from({ length: ACK_USERS }, (_, i) => retrying(() => po.registerDevice(`k${i}`, DEVICE, 'oldest'))));
write('R');

const acknowledged: Array<{ user: string; id: string; seq: number }> = [];

async function sender(n: number): Promise<void> {
  for (let i = 0; ; i++) {
    // Now and then resend something already acknowledged: it must come back with its seq.
    if (acknowledged.length > 0 && random() < 0.05) {
      const old = acknowledged[Math.floor(random() * acknowledged.length)]!;
      const r = await retrying(() => po.send({ to: old.user, from: `w${n}`, id: old.id, body: bodyFor(old.id) }));
      if (r.seq !== old.seq || !r.duplicate) write(`X ${old.id} ${old.seq} ${r.seq}`);
      continue;
    }
    const user = random() < 0.3 ? `k${Math.floor(random() * ACK_USERS)}` : `u${Math.floor(random() * USERS)}`;
    const id = `${runId}-${n}-${i}`;
    const sending = retrying(() => po.send({ to: user, from: `w${n}`, id, body: bodyFor(id) }));
    if (reportEarly) write(`A ${user} 0 ${id}`);
    const r = await sending;
    if (!reportEarly) write(`A ${user} ${r.seq} ${id}`);
    acknowledged.push({ user, id, seq: r.seq });
  }
}

/** Read a k-user's page as its device and ack a random prefix of it. */
async function acker(): Promise<void> {
  for (;;) {
    const user = `k${Math.floor(random() * ACK_USERS)}`;
    const page = await retrying(() => po.read(user, DEVICE, 0, 50));
    if (page.messages.length === 0) {
      await new Promise((r) => setTimeout(r, 2));
      continue;
    }
    const upTo = page.messages[Math.floor(random() * page.messages.length)]!.seq;
    await retrying(() => po.ack(user, DEVICE, upTo));
    write(`K ${user} ${upTo}`);
  }
}

await Promise.all([...Array.from({ length: SENDERS }, (_, n) => sender(n)), acker(), acker()]);
