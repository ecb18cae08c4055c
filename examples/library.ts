// pobox as a library: open the embedded store, send, read, ack. Run: npx tsx examples/library.ts
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostOffice, openStore } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'pobox-example-'));
const store = await openStore({ engine: 'lmdb', path: dir });
const po = new PostOffice({ store });

await po.registerDevice('bob', 'phone'); // Bob's first device: it gets everything kept for him

const sent = await po.send({ to: 'bob', from: 'alice', id: 'hello-1', body: 'Hi Bob!' });
console.log(`sent seq ${sent.seq}, durable: ${sent.durable}`);

const again = await po.send({ to: 'bob', from: 'alice', id: 'hello-1', body: 'Hi Bob!' });
console.log(`resent seq ${again.seq}, duplicate: ${again.duplicate}`);

const page = await po.read('bob', 'phone', 0, 100);
for (const m of page.messages) console.log(`bob/phone got #${m.seq} from ${m.from}: ${m.body}`);

const acked = await po.ack('bob', 'phone', page.nextAfter);
console.log(`acked up to ${acked.cursor}, deleted ${acked.deleted}`);

const stats = await po.stats('bob');
console.log(`pending ${stats.pending}, devices ${stats.devices.map((d) => `${d.device}@${d.cursor}`).join(', ')}`);

await po.close();
rmSync(dir, { recursive: true, force: true });
