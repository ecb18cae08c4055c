/**
 * Store benchmark (not a test): npm run bench:store [-- --quick]
 *
 * Over the embedded engine, through the post office, exactly as the gateway uses it:
 *   1. durable sends with group commit: many concurrent senders, each awaiting its ack
 *      (an ack means the commit was fsync'd), N messages over U users;
 *   2. read latency (p50/p99, microseconds) of random users' pending pages, measured
 *      when 10% of the messages are stored and again when all are;
 *   3. ack-delete throughput: every user's device acks its whole mailbox;
 *   4. bytes on disk after the sends and after the deletes;
 *   5. the process's peak RSS during the sends (the write-ahead log's resident index is
 *      bounded; see LmdbStore.residentSize) and the disk's own fdatasync latency, probed
 *      in the same run, beside every number.
 * Writes bench/results/store.json and bench/results/store.md (or store-quick.* with
 * --quick). The temp dir is removed at the end, on error and on Ctrl-C.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { openLmdbStore } from '../src/store/lmdb/index.js';
import { PostOffice } from '../src/postoffice/post-office.js';
import { machineInfo, machineMarkdown } from './lib/machine.js';
import { percentile } from './lib/stats.js';
import { fdatasyncLatency } from './lib/disk-probe.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    messages: { type: 'string' },
    users: { type: 'string' },
    senders: { type: 'string', default: '1000' },
    'read-samples': { type: 'string' },
  },
});
const quick = values.quick;
const MESSAGES = Number(values.messages ?? (quick ? 20_000 : 1_000_000));
const USERS = Number(values.users ?? (quick ? 2_000 : 100_000));
const SENDERS = Number(values.senders);
const READ_SAMPLES = Number(values['read-samples'] ?? (quick ? 2_000 : 20_000));
const PAGE = 100;
const BODY_BYTES = 200;
const CHECKPOINT = Math.round(MESSAGES / 10);

const dir = mkdtempSync(join(os.tmpdir(), 'pobox-bench-store-'));
const removeDir = (): void => rmSync(dir, { recursive: true, force: true });
process.on('exit', removeDir);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    removeDir();
    process.exit(130);
  });
}

const bar = (label: string): cliProgress.SingleBar =>
  new cliProgress.SingleBar(
    { format: `${label.padEnd(12)} [{bar}] {percentage}% | {value}/{total} | {duration_formatted} elapsed, eta {eta_formatted}`, stream: process.stderr, noTTYOutput: false },
    cliProgress.Presets.shades_classic,
  );

function diskBytes(): { fileBytes: number; allocatedBytes: number } {
  let fileBytes = 0;
  let allocatedBytes = 0;
  for (const f of readdirSync(dir)) {
    const s = statSync(join(dir, f));
    fileBytes += s.size;
    allocatedBytes += s.blocks * 512;
  }
  return { fileBytes, allocatedBytes };
}

const userName = (i: number): string => `user${i}`;
// A typical chat message: ~200 bytes of text, different for every message.
const BODY_BASE =
  'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris. ';
const bodyFor = (n: number): string => `${n}: ${BODY_BASE}`.slice(0, BODY_BYTES);

const info = machineInfo(['lmdb']);
const started = new Date().toISOString();
const disk = await fdatasyncLatency();
process.stderr.write(`disk: 4 KiB append + fdatasync p50 ${disk.p50} ms, p99 ${disk.p99} ms\n`);
const store = await openLmdbStore({ path: dir });
// Peak RSS while sending, sampled; and the largest resident index seen (engines without one report nothing).
let peakRss = 0;
let peakResident = 0;
const resident = (): number => ('residentSize' in store ? (store as { residentSize(): { messages: number } }).residentSize().messages : 0);
const rssTimer = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  peakResident = Math.max(peakResident, resident());
}, 50);
const po = new PostOffice({
  store,
  sweeper: false,
  config: { limits: { maxMailboxMessages: 1_000_000, maxMailboxBytes: 1 << 30 }, maxBatch: 2000 },
});

// ---- setup: one device per user (not measured) ------------------------------------
{
  const b = bar('devices');
  b.start(USERS, 0);
  for (let i = 0; i < USERS; i += 2000) {
    const n = Math.min(2000, USERS - i);
    await Promise.all(Array.from({ length: n }, (_, k) => po.registerDevice(userName(i + k), 'd')));
    b.increment(n);
  }
  b.stop();
}

// ---- 1. durable sends ----------------------------------------------------------------
interface ReadResult {
  storedMessages: number;
  samples: number;
  pageLimit: number;
  avgMessagesPerPage: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
  keysReadPerRead: number;
}

async function measureReads(storedMessages: number): Promise<ReadResult> {
  const lat: number[] = [];
  let got = 0;
  const keysBefore = store.counters().keysRead;
  const b = bar(`reads @${storedMessages >= 1e6 ? `${storedMessages / 1e6}M` : `${storedMessages / 1e3}k`}`);
  b.start(READ_SAMPLES, 0);
  for (let i = 0; i < READ_SAMPLES; i++) {
    const user = userName(Math.floor(Math.random() * USERS));
    const t0 = process.hrtime.bigint();
    const page = await po.read(user, 'd', 0, PAGE);
    lat.push(Number(process.hrtime.bigint() - t0) / 1000);
    got += page.messages.length;
    if (i % 500 === 0) b.update(i);
  }
  b.update(READ_SAMPLES);
  b.stop();
  lat.sort((a, b2) => a - b2);
  const r2 = (x: number): number => Math.round(x * 10) / 10;
  return {
    storedMessages,
    samples: READ_SAMPLES,
    pageLimit: PAGE,
    avgMessagesPerPage: r2(got / READ_SAMPLES),
    p50Us: r2(percentile(lat, 50)),
    p90Us: r2(percentile(lat, 90)),
    p99Us: r2(percentile(lat, 99)),
    maxUs: r2(lat[lat.length - 1]!),
    keysReadPerRead: r2((store.counters().keysRead - keysBefore) / READ_SAMPLES),
  };
}

const reads: ReadResult[] = [];
const sendLat: number[] = [];
let next = 0;
let sendSeconds = 0;
async function sendUntil(limit: number, b: cliProgress.SingleBar): Promise<void> {
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: SENDERS }, async () => {
      while (next < limit) {
        const n = next++;
        const s0 = process.hrtime.bigint();
        await po.send({ to: userName(n % USERS), from: `sender${n % 997}`, id: `m${n}`, body: bodyFor(n) });
        sendLat.push(Number(process.hrtime.bigint() - s0) / 1e6);
        if (n % 1000 === 0) b.update(next);
      }
    }),
  );
  sendSeconds += Number(process.hrtime.bigint() - t0) / 1e9;
  b.update(next);
}
{
  const b = bar('sends');
  b.start(MESSAGES, 0);
  await sendUntil(CHECKPOINT, b);
  b.stop();
  reads.push(await measureReads(CHECKPOINT));
  b.start(MESSAGES, next);
  await sendUntil(MESSAGES, b);
  b.stop();
  reads.push(await measureReads(MESSAGES));
}
sendLat.sort((a, b2) => a - b2);
clearInterval(rssTimer);
const diskAfterSend = diskBytes();

// ---- 3. ack-delete ---------------------------------------------------------------------
let deleted = 0;
let ackSeconds = 0;
{
  const b = bar('ack-delete');
  b.start(USERS, 0);
  let u = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: SENDERS }, async () => {
      while (u < USERS) {
        const user = userName(u++);
        const { lastSeq } = await po.read(user, 'd', 0, 1);
        const r = await po.ack(user, 'd', lastSeq);
        deleted += r.deleted;
        if (u % 500 === 0) b.update(u);
      }
    }),
  );
  ackSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  b.update(USERS);
  b.stop();
}
const diskAfterAcks = diskBytes();
await po.close();
const loadAfter = os.loadavg().map((l) => Math.round(l * 100) / 100);

// ---- results -----------------------------------------------------------------------------
const round = (x: number, d = 0): number => Math.round(x * 10 ** d) / 10 ** d;
const results = {
  benchmark: 'store',
  engine: 'lmdb',
  durability: "every send acknowledged only after its group commit was fsync'd (overlappingSync: false)",
  quick,
  started,
  machine: info,
  loadavgAfter: loadAfter,
  config: { messages: MESSAGES, users: USERS, concurrentSenders: SENDERS, bodyBytes: BODY_BYTES, readSamples: READ_SAMPLES, pageLimit: PAGE },
  diskFdatasyncMs: { p50: disk.p50, p99: disk.p99 },
  memory: { peakRssMiB: round(peakRss / 2 ** 20, 1), peakResidentMessages: peakResident },
  send: {
    messages: MESSAGES,
    seconds: round(sendSeconds, 2),
    perSecond: round(MESSAGES / sendSeconds),
    ackLatencyMs: { p50: round(percentile(sendLat, 50), 2), p99: round(percentile(sendLat, 99), 2) },
  },
  reads,
  ackDelete: {
    acks: USERS,
    deleted,
    seconds: round(ackSeconds, 2),
    acksPerSecond: round(USERS / ackSeconds),
    deletedPerSecond: round(deleted / ackSeconds),
  },
  disk: {
    afterSend: diskAfterSend,
    bytesPerMessage: round(diskAfterSend.allocatedBytes / MESSAGES, 1),
    afterAckDelete: diskAfterAcks,
  },
};

const mb = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;
const md = `# Store benchmark (lmdb)${quick ? ' — quick run' : ''}

Run with \`npm run bench:store${quick ? ' -- --quick' : ''}\` on ${started}. Every send is durable: it is
acknowledged only after the group commit holding it was fsync'd. Sends go through the
post office from ${SENDERS} concurrent senders, each waiting for its ack before the next send.

## Machine

${machineMarkdown(info)}
- load average after the run: ${loadAfter.join(' / ')}

This machine is shared by the whole team (2 cores); other work was running at the same
time, so treat the numbers as a lower bound and compare runs with care.

## Results

| what | result |
| --- | --- |
| durable sends | ${MESSAGES.toLocaleString('en-US')} messages (${BODY_BYTES} B bodies) over ${USERS.toLocaleString('en-US')} users in ${results.send.seconds} s: **${results.send.perSecond.toLocaleString('en-US')} msg/s** |
| send ack latency | p50 ${results.send.ackLatencyMs.p50} ms, p99 ${results.send.ackLatencyMs.p99} ms (with ${SENDERS} senders in flight) |
| this disk, same run | 4 KiB append + fdatasync p50 ${disk.p50} ms, p99 ${disk.p99} ms |
| peak RSS while sending | ${results.memory.peakRssMiB} MiB (largest write-ahead log resident index seen: ${peakResident.toLocaleString('en-US')} messages) |
${reads
  .map(
    (r) =>
      `| read a random user's page @ ${r.storedMessages.toLocaleString('en-US')} stored | p50 **${r.p50Us} µs**, p99 **${r.p99Us} µs** (p90 ${r.p90Us}, max ${r.maxUs}; ${r.avgMessagesPerPage} msgs/page, ${r.keysReadPerRead} keys read/read) |`,
  )
  .join('\n')}
| ack-delete (each ack after a read of the user's lastSeq) | ${USERS.toLocaleString('en-US')} acks deleting ${deleted.toLocaleString('en-US')} messages in ${results.ackDelete.seconds} s: **${results.ackDelete.acksPerSecond.toLocaleString('en-US')} acks/s, ${results.ackDelete.deletedPerSecond.toLocaleString('en-US')} deleted msg/s** |
| bytes on disk after sends | ${mb(diskAfterSend.allocatedBytes)} allocated (${results.disk.bytesPerMessage} B/message incl. dedupe and expiry index) |
| bytes on disk after ack-delete | ${mb(diskAfterAcks.allocatedBytes)} (LMDB reuses freed pages; the file does not shrink) |

Read cost depends on the reader's own pending messages, not on the total stored: compare
the two read rows (${reads.map((r) => r.keysReadPerRead).join(' vs ')} keys read per read as the store grows ${reads.length > 1 ? `${round(reads[1]!.storedMessages / reads[0]!.storedMessages)}x` : ''}, with ${reads.map((r) => r.avgMessagesPerPage).join(' vs ')} messages per page).
`;

const outDir = join(import.meta.dirname, 'results');
mkdirSync(outDir, { recursive: true });
const base = quick ? 'store-quick' : 'store';
writeFileSync(join(outDir, `${base}.json`), `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(join(outDir, `${base}.md`), md);
process.stderr.write(`wrote bench/results/${base}.json and ${base}.md\n`);
process.stdout.write(
  `${JSON.stringify({ fdatasyncMs: results.diskFdatasyncMs, memory: results.memory, send: results.send, reads: results.reads.map((r) => ({ at: r.storedMessages, p50Us: r.p50Us, p99Us: r.p99Us })), ackDelete: results.ackDelete, disk: results.disk.afterSend })}\n`,
);
