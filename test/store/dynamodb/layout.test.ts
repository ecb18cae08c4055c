/**
 * The table layout marker and the upgrade from layout 1, against DynamoDB Local: a table
 * written the way the previous engine wrote it (meta item at "#meta", a gap where an ack
 * deleted a message, no marker) is refused with a typed error naming the command to run;
 * `pobox dynamodb migrate` upgrades it in place, after which the engine reads every
 * mailbox as it was (messages, cursors, counters, dedupe, epoch) and goes on from there.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PutItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { PoboxError } from '../../../src/core/errors.js';
import { runCliProcess, type CliResult } from '../../support/cli.js';
import { useDynamoDbLocal } from './local-stores.js';

const local = useDynamoDbLocal();

const S = (v: string): AttributeValue => ({ S: v });
const N = (v: number): AttributeValue => ({ N: String(v) });
const seqKey = (seq: number): string => `m#${String(seq).padStart(16, '0')}`;

/** bob's mailbox as layout 1 left it: seqs 1-4 sent, 1-2 acked and deleted, 3 deleted too (a message for the tablet, acked by it). */
async function writeLayout1(table: string): Promise<void> {
  const put = (item: Record<string, AttributeValue>) => local.ddb.client.send(new PutItemCommand({ TableName: table, Item: item }));
  const exp = Date.now() + 3_600_000;
  await put({
    pk: S('bob'),
    sk: S('#meta'),
    gpk: S('users'),
    gsk: S('bob'),
    epoch: S('e1e1e1e1e1e1e1e1'),
    last: N(4),
    cnt: N(1),
    bytes: N(5),
    floor: N(2),
    ver: N(3),
    devs: { M: { phone: { M: { c: N(2), r: N(1000) } }, tablet: { M: { c: N(3), r: N(1000) } } } },
  });
  await put({ pk: S('bob'), sk: S(seqKey(4)), seq: N(4), id: S('m4'), f: S('a'), body: S('four!'), b: N(5), at: N(Date.now()), exp: N(exp), ttl: N(Math.ceil(exp / 1000)) });
  await put({ pk: S('bob'), sk: S('d#m4'), id: S('m4'), seq: N(4), exp: N(exp), ttl: N(Math.ceil(exp / 1000)), gpk: S('x#1'), gsk: S(String(exp).padStart(15, '0')) });
}

const pobox = (...args: string[]): Promise<CliResult> => runCliProcess(args);

describe('dynamodb table layout', () => {
  it('refuses a layout 1 table with a typed error; migrate upgrades it in place and nothing is lost', { timeout: 120_000 }, async () => {
    const table = await local.ddb.newTable();
    // newTable marked it as layout 2; make it look like a table the previous engine wrote.
    await local.ddb.client.send(new PutItemCommand({ TableName: table, Item: { pk: S('#pobox'), sk: S('#layout'), layout: N(1) } }));
    await writeLayout1(table);

    const old = await local.open(table);
    await assert.rejects(
      old.read({ user: 'bob', device: 'phone', afterSeq: 0, limit: 10, now: Date.now() }),
      (err: unknown) =>
        err instanceof PoboxError && err.code === 'UNAVAILABLE' && err.field === 'table' && /layout 1/.test(err.message) && /pobox dynamodb migrate/.test(err.message),
    );
    const now = Date.now();
    const [refused] = await old.append([{ id: 'x', from: 'a', to: 'bob', body: 'x', bytes: 1, sentAt: now, expiresAt: now + 60_000 }], {
      maxMailboxMessages: 10,
      maxMailboxBytes: 100,
    });
    assert.equal(refused?.ok, false, 'nothing is written into an old table');

    const run = await pobox('dynamodb', 'migrate', '--table', table, '--endpoint', local.ddb.endpoint);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /migrated .*: 1 mailboxes, 1 gaps closed/);
    assert.match((await pobox('dynamodb', 'migrate', '--table', table, '--endpoint', local.ddb.endpoint)).stdout, /already has the current layout/);

    const store = await local.open(table, { holeLeaseMs: 60_000 });
    // The deleted seq 3 was closed by migrate: no reader waits on it (the lease is a minute here).
    const page = await store.read({ user: 'bob', device: 'phone', afterSeq: 0, limit: 10, now: Date.now() });
    assert.deepEqual(
      page.messages.map((m) => [m.seq, m.body]),
      [[4, 'four!']],
    );
    const stats = await store.stats('bob', Date.now());
    assert.deepEqual([stats.epoch, stats.lastSeq, stats.pending, stats.pendingBytes], ['e1e1e1e1e1e1e1e1', 4, 1, 5]);
    assert.deepEqual(
      stats.devices.map((d) => [d.device, d.cursor]),
      [
        ['phone', 2],
        ['tablet', 3],
      ],
    );
    const t = Date.now();
    const limits = { maxMailboxMessages: 10, maxMailboxBytes: 100 };
    const [dup] = await store.append([{ id: 'm4', from: 'a', to: 'bob', body: 'four!', bytes: 5, sentAt: t, expiresAt: t + 60_000 }], limits);
    assert.deepEqual(dup, { ok: true, seq: 4, duplicate: true, epoch: 'e1e1e1e1e1e1e1e1' }, 'dedupe entries of layout 1 still answer');
    const [fresh] = await store.append([{ id: 'm5', from: 'a', to: 'bob', body: 'five', bytes: 4, sentAt: t, expiresAt: t + 60_000 }], limits);
    assert.deepEqual(fresh, { ok: true, seq: 5, duplicate: false, epoch: 'e1e1e1e1e1e1e1e1' }, 'the resend handed its reserved seq back');
    assert.deepEqual([(await store.stats('bob', Date.now())).pending, (await store.stats('bob', Date.now())).pendingBytes], [2, 9]);
    assert.deepEqual(await store.users(), ['bob']);
  });

  it('marks an empty table on first use and opens a marked one', { timeout: 60_000 }, async () => {
    const table = await local.ddb.newTable();
    const store = await local.open(table);
    assert.deepEqual(await store.users(), []);
  });
});
