/**
 * Crash safety on DynamoDB: the engine-neutral harness (test/crash/harness.ts) SIGKILLs
 * the pobox writer process under load while DynamoDB Local keeps running; everything the
 * writer saw acknowledged must be stored once, at its seq, with its body, and still be
 * recognised on resend. A handful of cycles: DynamoDB Local is a JVM on a shared box.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crashLine, runCrash } from '../../crash/harness.js';
import { useDynamoDbLocal } from './local-stores.js';

const CYCLES = Number(process.env.CRASH_DYNAMODB_CYCLES ?? 5);
const local = useDynamoDbLocal();

describe('crash safety: dynamodb', () => {
  it(`loses and duplicates nothing acknowledged over ${CYCLES} SIGKILL cycles`, { timeout: 600_000 }, async (t) => {
    const table = await local.ddb.newTable();
    const storeConfig = { engine: 'dynamodb', table, endpoint: local.ddb.endpoint, sweepShards: 2 };
    // A fresh writer's first round trips take a few seconds (SDK load, cold DynamoDB Local),
    // so the kill comes later than on lmdb to land while sends are in flight.
    const totals = await runCrash({ storeConfig, cycles: CYCLES, minMs: 2500, maxMs: 6000 });
    t.diagnostic(crashLine(totals));
    assert.equal(totals.cycles, CYCLES);
    assert.ok(totals.acknowledged > CYCLES, `the writer got real work done (${totals.acknowledged} acknowledged)`);
    assert.equal(totals.lost, 0, crashLine(totals));
    assert.equal(totals.duplicated, 0, crashLine(totals));
  });
});
