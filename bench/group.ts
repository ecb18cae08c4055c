/**
 * Group fan-out benchmark (not a test): npm run bench:group [-- --quick] [-- --messages N]
 *
 * Over the embedded engine, through the post office (the library), in ONE run: messages
 * stored per second when a 100-member and a 1,000-member group receive messages
 *
 *   group       one sendGroup per message (one append batch, one log record, one fsync),
 *               awaited before the next;
 *   together    the same message as one send per member, all issued at once and awaited
 *               together (the post office's group commit still batches them);
 *   one by one  the same message as one send per member, each awaited before the next
 *               (a client without group sends that waits for each answer);
 *   http-group  one POST /v1/messages with `to` listing every member, to a gateway on
 *               loopback (same engine), awaited before the next message;
 *   http-each   one POST per member, 64 in flight over keep-alive connections.
 *
 * Each row stores the same number of messages into a fresh data dir. Beside the rate:
 * the engine's own counters (log records and durable commits per stored message, which
 * do not depend on timing) and the load average before and after the row: the machine
 * is shared, so the rates are only comparable within one run.
 * Writes bench/results/group.json and group.md (quick runs: bench/results/quick/).
 */
import os from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { mintToken } from '../src/gateway/auth.js';
import { startServer } from '../src/server/compose.js';
import { PostOffice } from '../src/postoffice/post-office.js';
import { openLmdbStore } from '../src/store/lmdb/index.js';
import { benchMachine, resultsDir, writeResultPages } from './lib/results.js';
import { runConcurrent } from './lib/stats.js';
import { tempDir } from './lib/temp.js';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, messages: { type: 'string' } } });
const quick = values.quick;
/** Messages stored per row (a multiple of the largest group). */
const MESSAGES = Number(values.messages ?? (quick ? 4_000 : 100_000));
const ONE_BY_ONE_MESSAGES = Math.min(MESSAGES, quick ? 1_000 : 10_000);
const BODY = 'x'.repeat(200);
const HTTP_MESSAGES = Math.min(MESSAGES, quick ? 2_000 : 5_000);
/** Requests in flight for the one-request-per-member HTTP row (keep-alive connections). */
const HTTP_CONCURRENCY = 64;
const SECRET = randomBytes(32).toString('base64url');

type Mode = 'group' | 'together' | 'one-by-one' | 'http-group' | 'http-each';
interface Row {
  members: number;
  mode: Mode;
  messages: number;
  seconds: number;
  perSecond: number;
  walRecords: number;
  commits: number;
  loadBefore: number[];
  loadAfter: number[];
}

const load = (): number[] => os.loadavg().map((l) => Math.round(l * 100) / 100);

async function row(members: number, mode: Mode, messages: number): Promise<Row> {
  const dir = tempDir('group');
  const store = await openLmdbStore({ path: join(dir.path, 'lmdb') });
  const limits = { maxRecipients: Math.max(1000, members) };
  // HTTP rows: a gateway on loopback over the same kind of store (lent, so its counters stay readable).
  const server = mode.startsWith('http')
    ? await startServer({ port: 0, dataDir: dir.path, logLevel: 'silent', auth: { secrets: [SECRET] }, postOffice: { limits } }, { store })
    : undefined;
  const po = server ? undefined : new PostOffice({ store, sweeper: false, config: { limits } });
  const token = await mintToken({ secret: SECRET, user: 'sender', device: 'bench' });
  const post = async (body: unknown): Promise<any> => {
    const res = await fetch(`${server!.url}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (res.status !== 201 && res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
    return res.json();
  };
  const to = Array.from({ length: members }, (_, i) => `member-${String(i).padStart(4, '0')}`);
  const rounds = Math.ceil(messages / members);
  const loadBefore = load();
  const w0 = store.walCounters();
  const t0 = process.hrtime.bigint();
  let stored = 0;
  for (let r = 0; r < rounds; r++) {
    const id = `m-${r}`;
    if (mode === 'http-group') {
      const res = (await post({ to, id, body: BODY })) as { results: Array<{ duplicate?: boolean; error?: unknown }> };
      stored += res.results.filter((x) => x.error === undefined && !x.duplicate).length;
    } else if (mode === 'http-each') {
      await runConcurrent(to.length, HTTP_CONCURRENCY, async (i) => {
        if (!((await post({ to: to[i], id, body: BODY })) as { duplicate: boolean }).duplicate) stored++;
      });
    } else if (!po) {
      throw new Error('no post office');
    } else if (mode === 'group') {
      const res = await po.sendGroup({ to, from: 'sender', id, body: BODY });
      stored += res.results.filter((x) => x.ok && !x.duplicate).length;
    } else if (mode === 'together') {
      const res = await Promise.all(to.map((u) => po.send({ to: u, from: 'sender', id, body: BODY })));
      stored += res.filter((x) => !x.duplicate).length;
    } else {
      for (const u of to) if (!(await po.send({ to: u, from: 'sender', id, body: BODY })).duplicate) stored++;
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const w1 = store.walCounters();
  const out: Row = {
    members,
    mode,
    messages: stored,
    seconds: Math.round(seconds * 1000) / 1000,
    perSecond: Math.round(stored / seconds),
    walRecords: w1.records - w0.records,
    commits: w1.commits - w0.commits,
    loadBefore,
    loadAfter: load(),
  };
  if (server) {
    await server.close();
    await store.close();
  } else await po!.close();
  await dir.remove();
  console.log(
    `${String(members).padStart(5)} members  ${mode.padEnd(10)}  ${String(out.perSecond).padStart(8)} msg/s  (${stored} messages, ${out.walRecords} log records, ${out.commits} commits, load ${out.loadAfter[0]})`,
  );
  return out;
}

async function main(): Promise<void> {
  const machine = benchMachine(['lmdb', 'msgpackr']);
  const startedAt = new Date().toISOString();
  const rows: Row[] = [];
  for (const members of [100, 1000]) {
    rows.push(await row(members, 'group', MESSAGES));
    rows.push(await row(members, 'together', MESSAGES));
    rows.push(await row(members, 'one-by-one', ONE_BY_ONE_MESSAGES));
    rows.push(await row(members, 'http-group', HTTP_MESSAGES));
    rows.push(await row(members, 'http-each', HTTP_MESSAGES));
  }
  const dir = resultsDir(quick);
  const notes = [
    'Shared 2-core machine: compare rows of one run, not runs; the load average before and after each row is beside it.',
    "commits = write-ahead log groups fdatasync'd (the engine counter), records = log records appended: a group send is one of each.",
    'At the library level a group send stores as fast as the same sends issued all at once, because the post office batches concurrent sends into one append anyway (same log records and commits); what it saves is requests: one frame or HTTP request and one answer instead of one per member, and no window in which part of the group is queued behind other traffic. Awaiting each send in turn costs one fsync per message.',
  ];
  const table = [
    '| members | how | messages | seconds | messages/s | log records | commits | load before -> after (1 min) |',
    '| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |',
    ...rows.map((r) => `| ${r.members} | ${r.mode} | ${r.messages} | ${r.seconds} | ${r.perSecond} | ${r.walRecords} | ${r.commits} | ${r.loadBefore[0]} -> ${r.loadAfter[0]} |`),
  ];
  writeResultPages(
    dir,
    {
      name: 'group',
      quick,
      startedAt,
      finishedAt: new Date().toISOString(),
      machine,
      params: { messages: MESSAGES, oneByOneMessages: ONE_BY_ONE_MESSAGES, httpMessages: HTTP_MESSAGES, httpConcurrency: HTTP_CONCURRENCY, bodyBytes: BODY.length },
      notes,
      data: rows,
    },
    [
      '# Group fan-out (embedded engine: the library, and the HTTP API of a gateway on loopback)',
      '',
      `Run: \`npm run bench:group${quick ? ' -- --quick' : ''}\` (${startedAt}). Body ${BODY.length} bytes, fresh data dir per row.`,
      '',
      '- group: one `sendGroup` per message to all members, awaited before the next.',
      '- together: one `send` per member, all of a message issued at once (the post office batches them).',
      '- one-by-one: one `send` per member, each awaited before the next.',
      `- http-group: one POST /v1/messages with \`to\` listing all members per message, to a gateway on loopback, awaited before the next.`,
      `- http-each: one POST /v1/messages per member, ${HTTP_CONCURRENCY} in flight (keep-alive), all of a message before the next.`,
      '',
      ...table,
    ],
  );
  console.log(`wrote ${join(dir, 'group.json')} and group.md`);
}

await main();
