/**
 * Crash safety on the embedded engine, for real: a writer process is SIGKILLed under
 * load over and over, and every message it saw acknowledged must survive, once, with its
 * body. See harness.ts for the cycle and the check.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { crashLine, runCrash } from './harness.js';

// Each cycle starts a writer process (seconds on a busy 2-core machine): npm run crash runs more.
const CYCLES = Number(process.env.CRASH_CYCLES ?? 12);

describe('crash safety: lmdb', () => {
  it(`loses and duplicates nothing acknowledged over ${CYCLES} SIGKILL cycles`, { timeout: 600_000 }, async (t) => {
    const path = await mkdtemp(join(tmpdir(), 'pobox-crash-'));
    try {
      const totals = await runCrash({ storeConfig: { engine: 'lmdb', path }, cycles: CYCLES, minMs: 50, maxMs: 400 });
      t.diagnostic(crashLine(totals));
      assert.equal(totals.cycles, CYCLES);
      assert.ok(totals.acknowledged > CYCLES, `the writer got real work done (${totals.acknowledged} acknowledged)`);
      assert.equal(totals.lost, 0, crashLine(totals));
      assert.equal(totals.duplicated, 0, crashLine(totals));
    } finally {
      await rm(path, { recursive: true, force: true });
    }
  });

  // Negative control: if acknowledgements ran ahead of durability, the check must notice.
  // The writer's --report-early (test code only) reports a send before it resolves.
  it('the check catches messages reported before they were durable', { timeout: 120_000 }, async () => {
    const path = await mkdtemp(join(tmpdir(), 'pobox-crash-neg-'));
    try {
      const totals = await runCrash({ storeConfig: { engine: 'lmdb', path }, cycles: 5, reportEarly: true, earlyKillRate: 0, minMs: 100, maxMs: 300, stopOnLoss: true });
      assert.ok(totals.lost > 0, `expected losses to be detected: ${crashLine(totals)}`);
    } finally {
      await rm(path, { recursive: true, force: true });
    }
  });
});
