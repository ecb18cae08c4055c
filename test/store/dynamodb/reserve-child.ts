/**
 * A sender in its own process, for test/dynamodb/reservation.test.ts: it opens the
 * DynamoDB engine on the given table and appends one message, stopping right after the
 * engine reserved the seq and before it wrote anything else. It says so on stdout
 * (`R <seq>`) and waits for a line on stdin before going on; the parent either SIGKILLs
 * it there or lets it go on (`D ok <seq>` or `D <code>` when the append resolved).
 *
 * usage: node --import tsx test/dynamodb/reserve-child.ts <endpoint> <table> <user> <id>
 */
import { createInterface } from 'node:readline';
import { openDynamoDbStore } from '../../../src/store/dynamodb/index.js';

const [endpoint, table, user, id] = process.argv.slice(2);
if (!endpoint || !table || !user || !id) {
  process.stderr.write('usage: reserve-child.ts <endpoint> <table> <user> <id>\n');
  process.exit(2);
}
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const store = await openDynamoDbStore(
  { engine: 'dynamodb', table, endpoint },
  {
    afterReserve: async (_user, seqs) => {
      process.stdout.write(`R ${seqs.join(',')}\n`);
      await lines.next(); // the injected stop: nothing is written until the parent says go
    },
  },
);
const now = Date.now();
const [out] = await store.append([{ id, from: 'child', to: user, body: `body of ${id}`, bytes: `body of ${id}`.length, sentAt: now, expiresAt: now + 600_000 }], {
  maxMailboxMessages: 1000,
  maxMailboxBytes: 1 << 20,
});
process.stdout.write(out!.ok ? `D ok ${out!.seq}\n` : `D ${out!.error.code}\n`);
await store.close();
process.exit(0);
