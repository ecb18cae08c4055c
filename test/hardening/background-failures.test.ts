/**
 * Nothing fails silently in the background: the sweeper and the store's deferred deletes
 * report through the post office, the server logs the first failure of each burst and
 * counts every one in pobox_background_failures_total{source}.
 */
import { strict as assert } from 'node:assert';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { createLogger } from '../../src/gateway/logger.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { BackgroundFailures } from '../../src/ops/background-failures.js';
import { openStore } from '../../src/store/open.js';
import type { MailboxStore } from '../../src/store/contract.js';
import { parseProm, sample } from '../support/prom-text.js';
import { startOpsServer } from '../ops/server-helpers.js';
import { waitFor } from '../ops/helpers.js';
import { tempDir } from '../support/temp-dir.js';

function logLines(): { stream: Writable; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { stream, lines };
}

describe('background failures', () => {
  it('are logged once per burst and counted every time', async () => {
    const { stream, lines } = logLines();
    const metrics = createMetrics({ processMetrics: false });
    let now = 1_000_000;
    const f = new BackgroundFailures(createLogger('info', stream), metrics, 60_000, () => now);
    for (let i = 0; i < 100; i++) {
      f.report('sweeper', new Error('disk full'));
      now += 1000;
    }
    f.report('presence', new Error('redis away'));
    now += 61_000; // quiet: the next failure starts a new burst and says how many the last one hid
    f.report('sweeper', new Error('disk full again'));
    f.flush();
    await new Promise((r) => setImmediate(r));
    const sweeperLines = lines.filter((l) => l['source'] === 'sweeper');
    assert.equal(sweeperLines.length, 2, JSON.stringify(sweeperLines));
    assert.equal(sweeperLines[0]!['err'], 'disk full');
    assert.equal(sweeperLines[1]!['previousBurstMore'], 99);
    assert.equal(lines.filter((l) => l['source'] === 'presence').length, 1);
    const samples = parseProm(await metrics.registry.metrics());
    assert.equal(sample(samples, 'pobox_background_failures_total', { source: 'sweeper' }), 101);
    assert.equal(sample(samples, 'pobox_background_failures_total', { source: 'presence' }), 1);
  });

  const dirs: Array<{ remove: () => Promise<void> }> = [];
  after(async () => {
    for (const d of dirs) await d.remove();
  });

  it('a failing sweeper and failing deferred deletes show in /metrics and the log of a running server', async () => {
    const dir = tempDir('pobox-bg-');
    dirs.push(dir);
    const real = await openStore({ engine: 'lmdb', path: dir.path });
    let deleteListener: ((err: unknown) => void) | undefined;
    const store: MailboxStore = Object.assign(Object.create(real) as MailboxStore, {
      engine: real.engine,
      capabilities: real.capabilities,
      sweep: () => Promise.reject(new Error('sweep: No space left on device')),
      onBackgroundFailure: (l: (err: unknown) => void) => {
        deleteListener = l;
      },
    });
    const { stream, lines } = logLines();
    const ops = await startOpsServer({ logLevel: 'warn', postOffice: { retention: { sweepIntervalMs: 20 } } }, { store, logDestination: stream });
    try {
      assert.ok(deleteListener, 'the post office subscribed to the store');
      deleteListener(new Error('BatchWriteItem throttled'));
      const swept = await waitFor(async () => {
        const s = parseProm((await ops.get('/metrics')).text);
        const n = sample(s, 'pobox_background_failures_total', { source: 'sweeper' }) ?? 0;
        return n >= 3 ? s : undefined;
      }, 'sweeper failures counted');
      assert.equal(sample(swept, 'pobox_background_failures_total', { source: 'store_delete' }), 1);
      const logged = lines.filter((l) => String(l['msg']).startsWith('background failure: sweeper'));
      assert.equal(logged.length, 1, 'one line for the burst');
      assert.match(String(logged[0]!['err']), /No space left/);
    } finally {
      await ops.close();
      await real.close();
    }
  });
});
