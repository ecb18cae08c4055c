/**
 * The process the crash test kills. It opens the configured store and a post office and
 * sends under load until it is SIGKILLed, reporting on stdout, one line each:
 *
 *   R                      the store is open, load starts
 *   A <user> <seq> <id>    `send` RESOLVED for this message (it is durable)
 *   X <id> <seq> <got>     a resend of an acknowledged id came back with another seq
 *
 * stdout to a pipe is synchronous on Linux, so a line written is a line the parent
 * reads, even if the kill comes right after.
 *
 * usage: node --import tsx test/crash/writer.ts <dataDir | store-config-json> <runId> [--report-early]
 *
 * --report-early reports a send BEFORE it resolves. It exists only so the harness can
 * show that its check catches a lost message; the product has no such mode.
 */
import { openStore } from '../../src/store/open.js';
import { PostOffice } from '../../src/postoffice/post-office.js';
import { bodyFor } from './bodies.js';

const [target, runId = 'r', ...flags] = process.argv.slice(2);
if (!target) {
  process.stderr.write('usage: writer.ts <dataDir | store-config-json> <runId> [--report-early]\n');
  process.exit(2);
}
const reportEarly = flags.includes('--report-early');
const storeConfig: unknown = target.startsWith('{') ? JSON.parse(target) : { engine: 'lmdb', path: target };

const SENDERS = Number(process.env.CRASH_SENDERS ?? 48);
const USERS = Number(process.env.CRASH_USERS ?? 300);

const store = await openStore(storeConfig);
const po = new PostOffice({
  store,
  sweeper: false,
  config: { limits: { maxMailboxMessages: 1_000_000, maxMailboxBytes: 1 << 30 } },
});
const write = (line: string): void => {
  process.stdout.write(`${line}\n`);
};
write('R');

const acknowledged: Array<{ user: string; id: string; seq: number }> = [];

async function sender(n: number): Promise<void> {
  for (let i = 0; ; i++) {
    // Now and then resend something already acknowledged: it must come back with its seq.
    if (acknowledged.length > 0 && Math.random() < 0.05) {
      const old = acknowledged[Math.floor(Math.random() * acknowledged.length)]!;
      const r = await po.send({ to: old.user, from: `w${n}`, id: old.id, body: bodyFor(old.id) });
      if (r.seq !== old.seq || !r.duplicate) write(`X ${old.id} ${old.seq} ${r.seq}`);
      continue;
    }
    const user = `u${Math.floor(Math.random() * USERS)}`;
    const id = `${runId}-${n}-${i}`;
    const sending = po.send({ to: user, from: `w${n}`, id, body: bodyFor(id) });
    if (reportEarly) write(`A ${user} 0 ${id}`);
    const r = await sending;
    if (!reportEarly) write(`A ${user} ${r.seq} ${id}`);
    acknowledged.push({ user, id, seq: r.seq });
  }
}

await Promise.all(Array.from({ length: SENDERS }, (_, n) => sender(n)));
