/**
 * Lookup vs scan: the cost of "every pending message of this user" as the total number
 * of stored messages grows, for pobox (a key-range read per user) and for a shared log
 * (a scan of the user's partition). Every user has 10 pending messages; the users of a
 * stage receive theirs in shuffled order, so in the log they are spread over the whole
 * partition, as they are when senders write at random times. A stage whose shuffled
 * load into lmdb is projected to exceed the load budget is loaded user by user in key
 * order instead (about 10x faster in a copy-on-write B-tree), and the result says so.
 *
 *   npm run bench:lookup [-- --quick] [--max-n 1000000] [--partitions 8] [--no-dynamodb]
 *                        [--load-budget 600] [--dynamodb-max-n 100000] [--dynamodb-load-budget 300]
 *                        [--ordered-above N]
 *
 * A stage whose loading is projected (from the previous stage's rate) to take longer than
 * the budget is not started, and the result says so: raise --load-budget to go further.
 *
 * Writes lookup-vs-scan.json and lookup-vs-scan.svg in the results directory.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { openLmdbStore } from '../src/store/lmdb/index.js';
import { benchArgs, numberFlag } from './lib/args.js';
import { checkInterrupted, runMain } from './lib/cleanup.js';
import { writeLineChart, type SeriesPoint } from './lib/plot.js';
import { log, progress } from './lib/progress.js';
import { benchMachine, resultsDir, writeResult } from './lib/results.js';
import { Latency, round, shuffle, type LatencySummary } from './lib/stats.js';
import { seeded } from '../tools/random.js';
import { tempDir } from './lib/temp.js';
import { openDynamoSeries, type DynamoSeriesHandle } from './lookup/dynamodb-series.js';
import { PoboxSeries, SharedLogSeries, type Msg, type Series } from './lookup/series.js';

const PER_USER = 10;
const BATCH = 5000;
const BODY_LEN = 100;

export interface LookupPoint extends LatencySummary {
  series: string;
  n: number;
  users: number;
  /** Seconds this series spent storing the messages of this stage. */
  loadSeconds: number;
}

export interface LookupData {
  perUser: number;
  partitions: number;
  bodyBytes: number;
  points: LookupPoint[];
  ratios: Array<{ n: number; p50: number; p99: number }>;
  largestRatio?: { n: number; p50: number; p99: number };
  diskBytes: Record<string, number>;
  plot: string;
}

runMain(async () => {
  const args = benchArgs({
    'max-n': { type: 'string' },
    partitions: { type: 'string' },
    'no-dynamodb': { type: 'boolean' },
    'dynamodb-max-n': { type: 'string' },
    'load-budget': { type: 'string' },
    'dynamodb-load-budget': { type: 'string' },
    'ordered-above': { type: 'string' },
  });
  const quick = args.quick;
  const maxN = numberFlag(args, 'max-n', quick ? 100_000 : 10_000_000);
  const partitions = numberFlag(args, 'partitions', 8);
  const dynamoMaxN = numberFlag(args, 'dynamodb-max-n', quick ? 1_000 : 100_000);
  // Stages above this load in key order; by default only a stage whose shuffled load would blow the budget does.
  const orderedAbove = numberFlag(args, 'ordered-above', Number.MAX_SAFE_INTEGER);
  const ladder = (quick ? [1_000, 10_000, 100_000] : [1_000, 10_000, 100_000, 1_000_000, 10_000_000]).filter((n) => n <= maxN);
  // Sampling: key lookups are cheap, so many; scans are bounded by a time budget per N.
  const lookupSamples = quick ? 300 : 2000;
  const scanSamples = quick ? 100 : 400;
  const scanBudgetMs = quick ? 2_000 : 20_000;
  const scanMin = quick ? 30 : 100;
  // A stage whose load is projected to take longer than this is not started.
  const loadBudgetS = numberFlag(args, 'load-budget', quick ? 20 : 600);
  const dynamoLoadBudgetS = numberFlag(args, 'dynamodb-load-budget', quick ? 15 : 300);
  const startedAt = new Date().toISOString();
  const notes: string[] = [];

  const lmdbDir = tempDir('lookup-lmdb');
  const logDir = tempDir('lookup-log');
  const pobox = new PoboxSeries('pobox (lmdb)', await openLmdbStore({ path: lmdbDir.path }));
  const sharedLog = new SharedLogSeries(logDir.path, partitions);
  let dynamo: DynamoSeriesHandle | undefined;
  if (args.values['no-dynamodb'] !== true) {
    dynamo = await openDynamoSeries().catch((err: Error) => {
      notes.push(`pobox (DynamoDB Local) was not measured: ${err.message}`);
      return undefined;
    });
  }
  const active: Series[] = [pobox, sharedLog, ...(dynamo ? [dynamo.series] : [])];
  const loadRate = new Map<string, number>(); // messages per second, last stage
  let lastOrdered = false;

  const points: LookupPoint[] = [];
  const random = seeded(42);
  let users = 0;
  let stored = 0;
  try {
    for (const n of ladder) {
      try {
        const newUsers = n / PER_USER - users;
        const addCount = newUsers * PER_USER;
        let ordered = n > orderedAbove;
        let orderedWhy = ordered ? `stages above N=${fmt(orderedAbove)} load in key order (--ordered-above)` : '';
        // A rate measured with the other load order says nothing about this stage's.
        if (ordered !== lastOrdered) loadRate.clear();
        // Drop series whose load would not finish in reasonable time (or that are capped).
        for (const s of [...active]) {
          const rate = loadRate.get(s.name);
          const budget = s === dynamo?.series ? dynamoLoadBudgetS : loadBudgetS;
          const overCap = s === dynamo?.series && n > dynamoMaxN;
          const overBudget = rate !== undefined && addCount / rate > budget;
          if (s === pobox && overBudget && !ordered) {
            // Random inserts into lmdb's copy-on-write B-tree get slow past a million; key order is ~10x faster.
            ordered = true;
            orderedWhy = `random inserts into lmdb's copy-on-write B-tree ran at about ${Math.round(rate)} messages/s at the previous stage, so loading ${fmt(addCount)} shuffled messages would have taken about ${duration(addCount / rate)} (budget ${duration(budget)})`;
            continue;
          }
          if (overCap || overBudget) {
            const why = overCap
              ? `capped at N=${fmt(dynamoMaxN)} (--dynamodb-max-n)${rate === undefined ? '' : `: loading through DynamoDB Local ran at ${Math.round(rate)} messages/s, so the next stage would take about ${duration(addCount / rate)}`}`
              : `loading the next ${fmt(addCount)} messages at ${Math.round(rate!)} messages/s would take about ${duration(addCount / rate!)} (budget ${duration(budget)})`;
            notes.push(`${s.name} stops at N=${fmt(stored)}: ${why}.`);
            active.splice(active.indexOf(s), 1);
            if (s === dynamo?.series) await dynamo.close();
          }
        }
        lastOrdered = ordered;
        if (!active.includes(pobox) || !active.includes(sharedLog)) {
          notes.push(`Stopped at N=${fmt(stored)}: the next stage (N=${fmt(n)}) would not load in reasonable time.`);
          break;
        }

        // The stage's messages: 10 for each new user, shuffled (or user by user in key order, see above).
        const order = new Uint32Array(addCount);
        for (let i = 0; i < addCount; i++) order[i] = users + Math.floor(i / PER_USER);
        if (ordered) {
          notes.push(
            `The N=${fmt(n)} stage was loaded user by user, in key order, instead of shuffled: ${orderedWhy}. ` +
              'This does not change what is measured: a pobox fetch is a key-range read whatever the insertion order, and the shared-log fetch scans the whole partition whatever the order.',
          );
        } else {
          shuffle(order, random);
        }
        const nextK = new Uint8Array(newUsers);
        const baseTime = Date.now();
        const bar = progress(`lookup: load N=${fmt(n)}`, addCount * active.length);
        const spent = new Map<Series, number>(active.map((s) => [s, 0]));
        for (let off = 0; off < addCount; off += BATCH) {
          checkInterrupted();
          const batch: Msg[] = [];
          for (let i = off; i < Math.min(off + BATCH, addCount); i++) {
            const u = order[i]!;
            const k = nextK[u - users]!++;
            batch.push(message(u, k, baseTime + i));
          }
          // The series load side by side (each waits on its own disk or server); each is timed on its own.
          await Promise.all(
            active.map(async (s) => {
              const t0 = performance.now();
              await s.load(batch);
              spent.set(s, spent.get(s)! + performance.now() - t0);
              bar.tick(batch.length);
            }),
          );
        }
        bar.stop();
        users += newUsers;
        stored = n;
        for (const [s, ms] of spent) loadRate.set(s.name, addCount / (ms / 1000));

        // Who we ask for: the same random users for every series.
        const sampleCount = Math.min(lookupSamples, users);
        const sample = Array.from({ length: sampleCount }, () => userName(Math.floor(random() * users)));
        for (const s of active) await s.prepare(sample);
        await crossCheck(active, sample.slice(0, 5));

        for (const s of active) {
          const isScan = s === sharedLog;
          const lat = new Latency();
          const want = isScan ? Math.min(scanSamples, sampleCount) : sampleCount;
          const bar2 = progress(`lookup: ${s.name.slice(0, 22)} N=${fmt(n)}`, want);
          // Warm-up (JIT, file handles, DynamoDB Local's JVM), unrecorded.
          const warm = isScan ? 10 : 200;
          for (let i = 0; i < warm; i++) await s.fetch(sample[i % sampleCount]!);
          const t0 = performance.now();
          for (let i = 0; i < want; i++) {
            if (i % 100 === 0) checkInterrupted();
            const u = sample[i]!;
            const ids = await lat.time(() => s.fetch(u));
            if (ids.length !== PER_USER) throw new Error(`${s.name}: ${u} has ${ids.length} pending messages, expected ${PER_USER}`);
            bar2.tick();
            if (isScan && i + 1 >= scanMin && performance.now() - t0 > scanBudgetMs) break;
          }
          bar2.stop();
          const sum = lat.summary();
          if (isScan && sum.count < want)
            notes.push(`At N=${fmt(n)} the scan series took ${sum.count} samples (time budget ${scanBudgetMs / 1000} s), so its p99 is close to its maximum.`);
          points.push({ series: s.name, n, users, loadSeconds: round((spent.get(s) ?? 0) / 1000), ...sum });
          log(`  ${s.name.padEnd(36)} N=${fmt(n).padStart(5)}  p50 ${sum.p50} ms  p99 ${sum.p99} ms  (${sum.count} fetches)`);
        }
      } catch (err) {
        // Keep what the smaller stages measured; say why the run stopped here.
        checkInterrupted();
        if (points.length === 0) throw err;
        notes.push(`Stopped at N=${fmt(stored)}: the stage N=${fmt(n)} failed: ${(err as Error).message}`);
        log(`lookup: stage N=${fmt(n)} failed: ${(err as Error).stack}`);
        break;
      }
    }
  } finally {
    await pobox.close();
    await sharedLog.close();
    if (dynamo) await dynamo.close();
  }

  const diskBytes = { 'pobox (lmdb)': du(lmdbDir.path), [sharedLog.name]: du(logDir.path) };
  await lmdbDir.remove();
  await logDir.remove();

  const ratios = ladder
    .map((n) => {
      const a = points.find((p) => p.n === n && p.series === pobox.name);
      const b = points.find((p) => p.n === n && p.series === sharedLog.name);
      return a && b ? { n, p50: round(b.p50 / a.p50), p99: round(b.p99 / a.p99) } : undefined;
    })
    .filter((r): r is { n: number; p50: number; p99: number } => r !== undefined);
  const largestRatio = ratios.at(-1);
  if (largestRatio) {
    log(`At N=${fmt(largestRatio.n)} the shared-log scan is ${largestRatio.p50}x slower than pobox at p50 and ${largestRatio.p99}x at p99.`);
  }

  const dir = resultsDir(quick);
  const plot = 'lookup-vs-scan.svg';
  const series: SeriesPoint[] = points.flatMap((p) => [
    { series: p.series, x: p.n, y: Math.max(p.p50, 0.001), stat: 'p50' },
    { series: p.series, x: p.n, y: Math.max(p.p99, 0.001), stat: 'p99' },
  ]);
  await writeLineChart(path.join(dir, plot), series, {
    title: "Fetch one user's 10 pending messages",
    xTitle: 'total stored messages (N, log)',
    yTitle: 'latency, ms (log)',
    xLog: true,
    yLog: true,
  });
  const file = writeResult<LookupData>(dir, {
    name: 'lookup-vs-scan',
    quick,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: benchMachine(['lmdb', 'vega', 'vega-lite'], dynamo ? { 'dynamodb-local': dynamo.version } : {}),
    params: { ladder, orderedAbove, perUser: PER_USER, partitions, bodyBytes: BODY_LEN, lookupSamples, scanSamples, scanBudgetMs, scanMin, loadBatch: BATCH, dynamoMaxN },
    notes,
    data: { perUser: PER_USER, partitions, bodyBytes: BODY_LEN, points, ratios, ...(largestRatio ? { largestRatio } : {}), diskBytes, plot },
  });
  log(`wrote ${file}`);
});

function duration(seconds: number): string {
  return seconds < 120 ? `${Math.round(seconds)} s` : `${Math.round(seconds / 60)} min`;
}

function userName(i: number): string {
  return `user-${i}`;
}

function message(u: number, k: number, sentAt: number): Msg {
  const user = userName(u);
  const head = `message ${k} for ${user}: `;
  return { user, id: `m-${u}-${k}`, body: head + 'x'.repeat(Math.max(0, BODY_LEN - head.length)), sentAt };
}

/** Every series must return the same messages; a fast wrong answer proves nothing. */
async function crossCheck(series: Series[], users: string[]): Promise<void> {
  for (const u of users) {
    const answers = await Promise.all(series.map(async (s) => (await s.fetch(u)).sort().join(',')));
    if (answers.some((a) => a !== answers[0])) throw new Error(`series disagree on the pending messages of ${u}`);
  }
}

function fmt(n: number): string {
  if (n >= 1e6 && n % 1e6 === 0) return `${n / 1e6}M`;
  if (n >= 1e3 && n % 1e3 === 0) return `${n / 1e3}k`;
  return String(n);
}

function du(dir: string): number {
  try {
    return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
  } catch {
    return 0;
  }
}
