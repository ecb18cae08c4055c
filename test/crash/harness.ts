/**
 * Crash harness, engine-neutral: it only knows a store config (the same object
 * `openStore` takes, e.g. `{ engine: 'lmdb', path }` or `{ engine: 'dynamodb', table,
 * endpoint }`).
 *
 * One cycle: start test/crash/writer.ts as a child process over that store, let it send
 * under load, SIGKILL it at a random moment (sometimes before it is even ready), then
 * open the store here and check that every message the writer reported as acknowledged,
 * in this cycle and all earlier ones, is stored once, at its seq, with its exact body,
 * and that a resend of it is still recognised as a duplicate. Users k* have one device
 * that acks as it reads: their cursor must be at least the last ack reported, every
 * acknowledged message above it must be there, and their pending count must match what
 * is readable (a delete that went missing or too far counts as lost).
 *
 * On lmdb, half the cycles (chosen from the seed) run the write-ahead log with tiny apply
 * thresholds, so applies and trims run all the time; the writer reports their moments,
 * and the totals say how many kills landed inside an apply or a trim.
 *
 * Why this proves durability on lmdb: the engine opens LMDB with `overlappingSync:
 * false`, so a write transaction's promise resolves only after its commit is fsync'd,
 * and the writer reports a message only after `send` resolved. (A SIGKILL leaves the OS
 * page cache intact, so it exercises the process-crash path; the fsync is what covers a
 * machine crash.)
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../src/store/open.js';
import type { MailboxStore } from '../../src/store/contract.js';
import { bodyFor } from './bodies.js';
import { seeded } from '../../tools/random.js';

const WRITER = fileURLToPath(new URL('./writer.ts', import.meta.url));
const VERIFIER = 'crash-verifier';

export interface Acked {
  user: string;
  id: string;
  /** 0 when the writer reported before the send resolved (--report-early). */
  seq: number;
}

export interface CycleResult {
  acknowledged: number;
  /** Highest upTo each k-user's device acked (resolved) in this cycle. */
  acks: Map<string, number>;
  /**
   * Where the kill landed: the last apply-cycle event the writer reported ('staged': inside
   * an apply, its chunks durable and its last transaction not yet committed).
   */
  killedIn: 'apply' | 'staged' | 'trim' | 'other';
  /** Resends inside the writer that came back with a different seq. */
  dedupeMismatches: number;
  killedBeforeReady: boolean;
  /** Calls the writer saw refused UNAVAILABLE (a failed write the engine recovered from in place) and retried. */
  refused: number;
  /** The last such refusal's message. */
  lastRefusal?: string;
}

export interface CrashOptions {
  /** What openStore takes; passed to the writer as JSON. */
  storeConfig: Record<string, unknown>;
  cycles: number;
  /** Seeds kill times, the writer's choices and the check's samples (default: random). */
  seed?: number;
  /** Load time before the kill is random in [minMs, maxMs] after the writer is ready. */
  minMs?: number;
  maxMs?: number;
  /** Share of cycles killed at a random moment before the writer reports ready. */
  earlyKillRate?: number;
  /** The writer runs the engine in a worker thread (src/store/worker/host.ts), as `--store-worker` does. */
  worker?: boolean;
  /** Test-only: the writer reports sends before they resolve (the check must catch it). */
  reportEarly?: boolean;
  /** Stop at the first cycle that finds a loss (for the negative control). */
  stopOnLoss?: boolean;
  onCycle?: (cycle: number, totals: CrashTotals) => void;
}

export interface CrashTotals {
  cycles: number;
  acknowledged: number;
  lost: number;
  duplicated: number;
  seed: number;
  acks: number;
  /** Kills that landed after an apply started and before it committed / inside a trim. */
  killedInApply: number;
  /** Of killedInApply: after its chunks were durable, before its last transaction committed. */
  killedStaged: number;
  killedInTrim: number;
  /** The writer ran the engine in a worker thread. */
  worker: boolean;
  /** Calls refused UNAVAILABLE while the engine recovered in place from a failed write, retried by the writer. */
  refused: number;
  lastRefusal?: string;
  /** What the check found lost (the first few), for the report. */
  lostWhy?: string[];
}

/** Start the writer, kill it at a random moment, collect what it acknowledged. */
export async function runCycle(
  storeConfig: Record<string, unknown>,
  runId: string,
  opts: CrashOptions,
  random: () => number = Math.random,
): Promise<{ acked: Acked[]; result: CycleResult }> {
  const randomIn = (lo: number, hi: number): number => lo + random() * (hi - lo);
  const args = ['--import', 'tsx', WRITER, JSON.stringify(storeConfig), runId, '--seed', String(Math.floor(random() * 2 ** 31))];
  const tiny = storeConfig.engine === 'lmdb' && random() < 0.5;
  if (tiny) args.push('--wal', 'tiny');
  // In some tiny-log cycles the kill is aimed: sent the moment the writer reports that an
  // apply started, that its chunks are durable (its last transaction to come), or that a
  // trim started (after the usual random delay). Whether it lands inside is counted from
  // what the writer reported last, never assumed.
  const aims = ['apply', 'staged', 'trim'] as const;
  const aim: (typeof aims)[number] | undefined = tiny && random() < 0.5 ? aims[Math.floor(random() * aims.length)] : undefined;
  let armed = false;
  if (opts.reportEarly) args.push('--report-early');
  if (opts.worker) args.push('--worker');
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const acked: Acked[] = [];
  let mismatches = 0;
  let refused = 0;
  let lastRefusal: string | undefined;
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));

  const early = random() < (opts.earlyKillRate ?? 0.1);
  const acks = new Map<string, number>();
  let phase: CycleResult['killedIn'] = 'other';
  let timer: NodeJS.Timeout | undefined;
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  if (early) timer = setTimeout(kill, randomIn(0, 400));

  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    const [kind, a, b, c] = line.split(' ');
    if (kind === 'R' && !early) {
      const delay = randomIn(opts.minMs ?? 100, opts.maxMs ?? 600);
      if (aim) {
        timer = setTimeout(() => (armed = true), delay);
        setTimeout(kill, delay + 2000).unref(); // no such event came: kill anyway
      } else timer = setTimeout(kill, delay);
    } else if (kind === 'A' && a && b && c) acked.push({ user: a, seq: Number(b), id: c });
    else if (kind === 'X') mismatches++;
    else if (kind === 'F') {
      refused++;
      lastRefusal = line.slice(2);
    } else if (kind === 'K' && a && b) acks.set(a, Math.max(acks.get(a) ?? 0, Number(b)));
    else if (kind === 'P') {
      phase = a === 'apply' || a === 'staged' || a === 'trim' ? a : 'other';
      if (armed && a === aim) kill();
    }
  });
  // A writer that never gets going must not hang the harness.
  const watchdog = setTimeout(kill, 60_000);
  const { signal } = await exited;
  clearTimeout(watchdog);
  if (timer) clearTimeout(timer);
  if (signal !== 'SIGKILL') throw new Error(`writer exited by itself (signal ${String(signal)}): ${stderr}`);
  return {
    acked,
    result: { acknowledged: acked.length, acks, killedIn: phase, dedupeMismatches: mismatches, killedBeforeReady: early, refused, ...(lastRefusal ? { lastRefusal } : {}) },
  };
}

/**
 * Check every acknowledged message against the reopened store. Returns how many are
 * lost (missing, moved to another seq, or with another body) and how many ids are
 * stored more than once or not recognised as duplicates on resend.
 */
export async function verify(
  store: MailboxStore,
  all: readonly Acked[],
  now: number,
  ackedUpTo: ReadonlyMap<string, number> = new Map(),
  random: () => number = Math.random,
): Promise<{ lost: number; duplicated: number; why: string[] }> {
  const why: string[] = [];
  const byUser = new Map<string, Acked[]>();
  for (const a of all) {
    let list = byUser.get(a.user);
    if (!list) byUser.set(a.user, (list = []));
    list.push(a);
  }
  let lost = 0;
  let duplicated = 0;
  for (const [user, expected] of byUser) {
    if (user.startsWith('k')) {
      const r = await verifyAcking(store, user, expected, ackedUpTo.get(user) ?? 0, now, why);
      lost += r.lost;
      duplicated += r.duplicated;
      continue;
    }
    // A reader device that never acks, so nothing is ever deleted under the check.
    await store.registerDevice(user, VERIFIER, 'oldest', now, 1000);
    const stored = new Map<string, { seq: number; body: string }>();
    let after = 0;
    let lastSeq = 0;
    for (;;) {
      const page = await store.read({ user, device: VERIFIER, afterSeq: after, limit: 1000, now });
      for (const m of page.messages) {
        if (m.seq <= lastSeq) duplicated++; // order broken
        lastSeq = m.seq;
        if (stored.has(m.id)) duplicated++;
        stored.set(m.id, { seq: m.seq, body: m.body as string });
      }
      if (!page.more) break;
      after = page.nextAfter;
    }
    for (const a of expected) {
      const s = stored.get(a.id);
      if (!s || s.body !== bodyFor(a.id) || (a.seq !== 0 && s.seq !== a.seq)) {
        lost++;
        why.push(`${user} ${a.id} acknowledged at seq ${a.seq}: ${s ? `stored at ${s.seq}${s.body === bodyFor(a.id) ? '' : ' with another body'}` : 'missing'}`);
      }
    }
  }
  // Dedupe survives the crash: resend a sample of acknowledged ids.
  const sample = Array.from({ length: Math.min(20, all.length) }, () => all[Math.floor(random() * all.length)]!);
  const outcomes = await store.append(
    sample.map((a) => ({ id: a.id, from: 'crash', to: a.user, body: bodyFor(a.id), bytes: Buffer.byteLength(bodyFor(a.id)), sentAt: now, expiresAt: now + 86_400_000 })),
    { maxMailboxMessages: 1_000_000, maxMailboxBytes: 1 << 30 },
  );
  outcomes.forEach((o, i) => {
    if (!o.ok) return;
    const a = sample[i]!;
    if (!o.duplicate || (a.seq !== 0 && o.seq !== a.seq)) duplicated++;
  });
  return { lost, duplicated, why };
}

/**
 * A user whose only device (d) acks as it reads, never the verifier's: its cursor is at
 * least the last ack that resolved, what is above it is there, and pending counts match.
 */
async function verifyAcking(
  store: MailboxStore,
  user: string,
  expected: readonly Acked[],
  ackedUpTo: number,
  now: number,
  why: string[],
): Promise<{ lost: number; duplicated: number }> {
  let lost = 0;
  let duplicated = 0;
  const device = (await store.listDevices(user)).find((d) => d.device === 'd');
  const cursor = device?.cursor ?? 0;
  if (!device || cursor < ackedUpTo) {
    lost++; // a resolved ack was taken back
    why.push(`${user}: cursor ${device ? cursor : 'gone'} below the resolved ack to ${ackedUpTo}`);
  }
  const stored = new Map<string, { seq: number; body: string }>();
  let after = 0;
  let lastSeq = 0;
  let readable = 0;
  for (;;) {
    const page = await store.read({ user, device: 'd', afterSeq: after, limit: 1000, now });
    for (const m of page.messages) {
      if (m.seq <= lastSeq || stored.has(m.id)) duplicated++;
      lastSeq = m.seq;
      stored.set(m.id, { seq: m.seq, body: m.body as string });
      readable++;
    }
    if (!page.more) break;
    after = page.nextAfter;
  }
  for (const a of expected) {
    if (a.seq !== 0 && a.seq <= cursor) continue; // acked by its only device: deleted
    const s = stored.get(a.id);
    if (!s || s.body !== bodyFor(a.id) || (a.seq !== 0 && s.seq !== a.seq)) {
      lost++;
      why.push(`${user} ${a.id} acknowledged at seq ${a.seq}, cursor ${cursor}: ${s ? `stored at ${s.seq}` : 'missing'}`);
    }
  }
  // Deletes went exactly as far as the cursor: what is counted is what can be read, and
  // nothing at or below the cursor is left stored (an apply cut short must not leave a
  // copy of a message deleted since).
  const pending = (await store.stats(user, now)).pending;
  if (pending !== readable) {
    lost++;
    why.push(`${user}: pending ${pending}, readable ${readable} (cursor ${cursor})`);
  }
  if ((await store.exportPage(user, 0, cursor, 1000)).messages.length > 0) duplicated++;
  return { lost, duplicated };
}

/** Run the cycles over one store; everything acknowledged so far is checked after each kill. */
export async function runCrash(opts: CrashOptions): Promise<CrashTotals> {
  const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 31);
  const random = seeded(seed);
  const totals: CrashTotals = {
    cycles: 0,
    acknowledged: 0,
    lost: 0,
    duplicated: 0,
    seed,
    acks: 0,
    killedInApply: 0,
    killedStaged: 0,
    killedInTrim: 0,
    worker: opts.worker === true,
    refused: 0,
  };
  const ackedUpTo = new Map<string, number>();
  const all: Acked[] = [];
  const seen = new Set<string>();
  let writerMismatches = 0;
  for (let cycle = 1; cycle <= opts.cycles; cycle++) {
    const { acked, result } = await runCycle(opts.storeConfig, `c${cycle}`, opts, random);
    for (const [user, upTo] of result.acks) ackedUpTo.set(user, Math.max(ackedUpTo.get(user) ?? 0, upTo));
    totals.acks += result.acks.size;
    totals.refused += result.refused;
    if (result.lastRefusal) totals.lastRefusal = result.lastRefusal;
    if (result.killedIn === 'apply' || result.killedIn === 'staged') totals.killedInApply++;
    if (result.killedIn === 'staged') totals.killedStaged++;
    if (result.killedIn === 'trim') totals.killedInTrim++;
    for (const a of acked) {
      const key = `${a.user}\u0000${a.id}`;
      if (seen.has(key)) continue; // reported twice by the writer (its own resend check)
      seen.add(key);
      all.push(a);
    }
    totals.cycles = cycle;
    totals.acknowledged += result.acknowledged;
    writerMismatches += result.dedupeMismatches;
    const store = await openStore(opts.storeConfig);
    try {
      const r = await verify(store, all, Date.now(), ackedUpTo, random);
      // Each check covers everything acknowledged so far, so the latest one is the total.
      totals.lost = r.lost;
      totals.lostWhy = r.why.slice(0, 5);
      totals.duplicated = writerMismatches + r.duplicated;
    } finally {
      await store.close();
    }
    opts.onCycle?.(cycle, totals);
    if (opts.stopOnLoss && totals.lost > 0) break;
  }
  return totals;
}

export function crashLine(t: CrashTotals): string {
  const where = t.worker ? '; store in a worker thread' : '';
  const refused = t.refused > 0 ? `; ${t.refused} calls refused while the store recovered in place, retried (last: ${t.lastRefusal ?? '?'})` : '';
  return `crash: ${t.cycles} cycles, ${t.acknowledged} acknowledged, ${t.lost} lost, ${t.duplicated} duplicated (seed ${t.seed}${where}; kills inside an apply ${t.killedInApply} (${t.killedStaged} between its chunks and its last commit), inside a trim ${t.killedInTrim}${refused})${t.lost > 0 && t.lostWhy ? `; lost: ${t.lostWhy.join('; ')}` : ''}`;
}
