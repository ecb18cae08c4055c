/**
 * The process of the worker-death test (worker-store.test.ts): the embedded engine in a
 * worker thread under a post office, senders sending to bob until `--after` sends were
 * acknowledged, then the worker thread is stopped mid-load, as a crash inside it would.
 * One line per event on stdout (synchronous to a pipe):
 *
 *   A <id> <seq>    a send resolved: acknowledged, durable
 *   E <code>        a send in flight when the thread died was refused with this code
 *   L <code>        a send after the death was refused with this code
 *   D <marked>      the death reached the post office's backgroundFailure (marked: isStoreWorkerDeath)
 *   X               done
 *
 * usage: node --import tsx test/store/worker/die-child.ts <path> [--after N]
 */
import { parseArgs } from 'node:util';
import { PoboxError } from '../../../src/core/errors.js';
import { PostOffice } from '../../../src/postoffice/post-office.js';
import { isStoreWorkerDeath, openWorkerStore } from '../../../src/store/worker/host.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { after: { type: 'string', default: '300' } } });
const path = positionals[0]!;
const after = Number(values.after);
const write = (line: string): void => {
  process.stdout.write(`${line}\n`);
};
const codeOf = (err: unknown): string => (err instanceof PoboxError ? err.code : `not a PoboxError: ${String(err)}`);

const store = await openWorkerStore({ lmdb: { path } });
const po = new PostOffice({ store, sweeper: false, config: { limits: { maxMailboxMessages: 1_000_000, maxMailboxBytes: 1 << 30 } } });
po.events.on('backgroundFailure', ({ err }) => write(`D ${isStoreWorkerDeath(err)}`));
await po.registerDevice('bob', 'd', 'oldest');

let acknowledged = 0;
let killing: Promise<void> | undefined;
async function sender(n: number): Promise<void> {
  for (let i = 0; ; i++) {
    const id = `s${n}-${i}`;
    try {
      const r = await po.send({ to: 'bob', from: `w${n}`, id, body: `body of ${id}` });
      write(`A ${id} ${r.seq}`);
      if (++acknowledged === after) killing = store.terminateThread();
    } catch (err) {
      write(`E ${codeOf(err)}`);
      return;
    }
  }
}
await Promise.all(Array.from({ length: 16 }, (_, n) => sender(n)));
await killing;
try {
  await po.send({ to: 'bob', from: 'late', id: 'late', body: 'late' });
  write('L none');
} catch (err) {
  write(`L ${codeOf(err)}`);
}
write('X');
process.exit(0);
