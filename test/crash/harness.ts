/**
 * Crash harness, engine-neutral: it only knows a store config (the same object
 * `openStore` takes, e.g. `{ engine: 'lmdb', path }` or `{ engine: 'dynamodb', table,
 * endpoint }`).
 *
 * One cycle: start test/crash/writer.ts as a child process over that store, let it send
 * under load, SIGKILL it at a random moment (sometimes before it is even ready), then
 * open the store here and check that every message the writer reported as acknowledged,
 * in this cycle and all earlier ones, is stored once, at its seq, with its exact body,
 * and that a resend of it is still recognised as a duplicate.
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
  /** Resends inside the writer that came back with a different seq. */
  dedupeMismatches: number;
  killedBeforeReady: boolean;
}

export interface CrashOptions {
  /** What openStore takes; passed to the writer as JSON. */
  storeConfig: Record<string, unknown>;
  cycles: number;
  /** Load time before the kill is random in [minMs, maxMs] after the writer is ready. */
  minMs?: number;
  maxMs?: number;
  /** Share of cycles killed at a random moment before the writer reports ready. */
  earlyKillRate?: number;
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
}

const randomIn = (lo: number, hi: number): number => lo + Math.random() * (hi - lo);

/** Start the writer, kill it at a random moment, collect what it acknowledged. */
export async function runCycle(storeConfig: Record<string, unknown>, runId: string, opts: CrashOptions): Promise<{ acked: Acked[]; result: CycleResult }> {
  const args = ['--import', 'tsx', WRITER, JSON.stringify(storeConfig), runId];
  if (opts.reportEarly) args.push('--report-early');
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const acked: Acked[] = [];
  let mismatches = 0;
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));

  const early = Math.random() < (opts.earlyKillRate ?? 0.1);
  let timer: NodeJS.Timeout | undefined;
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  if (early) timer = setTimeout(kill, randomIn(0, 400));

  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    const [kind, a, b, c] = line.split(' ');
    if (kind === 'R' && !early) timer = setTimeout(kill, randomIn(opts.minMs ?? 100, opts.maxMs ?? 600));
    else if (kind === 'A' && a && b && c) acked.push({ user: a, seq: Number(b), id: c });
    else if (kind === 'X') mismatches++;
  });
  // A writer that never gets going must not hang the harness.
  const watchdog = setTimeout(kill, 60_000);
  const { signal } = await exited;
  clearTimeout(watchdog);
  if (timer) clearTimeout(timer);
  if (signal !== 'SIGKILL') throw new Error(`writer exited by itself (signal ${String(signal)}): ${stderr}`);
  return { acked, result: { acknowledged: acked.length, dedupeMismatches: mismatches, killedBeforeReady: early } };
}

/**
 * Check every acknowledged message against the reopened store. Returns how many are
 * lost (missing, moved to another seq, or with another body) and how many ids are
 * stored more than once or not recognised as duplicates on resend.
 */
export async function verify(store: MailboxStore, all: readonly Acked[], now: number): Promise<{ lost: number; duplicated: number }> {
  const byUser = new Map<string, Acked[]>();
  for (const a of all) {
    let list = byUser.get(a.user);
    if (!list) byUser.set(a.user, (list = []));
    list.push(a);
  }
  let lost = 0;
  let duplicated = 0;
  for (const [user, expected] of byUser) {
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
        stored.set(m.id, { seq: m.seq, body: m.body });
      }
      if (!page.more) break;
      after = page.nextAfter;
    }
    for (const a of expected) {
      const s = stored.get(a.id);
      if (!s || s.body !== bodyFor(a.id) || (a.seq !== 0 && s.seq !== a.seq)) lost++;
    }
  }
  // Dedupe survives the crash: resend a sample of acknowledged ids.
  const sample = Array.from({ length: Math.min(20, all.length) }, () => all[Math.floor(Math.random() * all.length)]!);
  const outcomes = await store.append(
    sample.map((a) => ({ id: a.id, from: 'crash', to: a.user, body: bodyFor(a.id), bytes: Buffer.byteLength(bodyFor(a.id)), sentAt: now, expiresAt: now + 86_400_000 })),
    { maxMailboxMessages: 1_000_000, maxMailboxBytes: 1 << 30 },
  );
  outcomes.forEach((o, i) => {
    if (!o.ok) return;
    const a = sample[i]!;
    if (!o.duplicate || (a.seq !== 0 && o.seq !== a.seq)) duplicated++;
  });
  return { lost, duplicated };
}

/** Run the cycles over one store; everything acknowledged so far is checked after each kill. */
export async function runCrash(opts: CrashOptions): Promise<CrashTotals> {
  const totals: CrashTotals = { cycles: 0, acknowledged: 0, lost: 0, duplicated: 0 };
  const all: Acked[] = [];
  const seen = new Set<string>();
  let writerMismatches = 0;
  for (let cycle = 1; cycle <= opts.cycles; cycle++) {
    const { acked, result } = await runCycle(opts.storeConfig, `c${cycle}`, opts);
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
      const r = await verify(store, all, Date.now());
      // Each check covers everything acknowledged so far, so the latest one is the total.
      totals.lost = r.lost;
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
  return `crash: ${t.cycles} cycles, ${t.acknowledged} acknowledged, ${t.lost} lost, ${t.duplicated} duplicated`;
}
