/**
 * DynamoDB-only behaviour, against DynamoDB Local: what the conformance suite cannot say
 * in engine-neutral terms (item size limits, several nodes racing on one mailbox, late
 * native TTL, released messages, consumed capacity, the create-table command).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DescribeTableCommand, DescribeTimeToLiveCommand, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { PostOffice } from '../../../src/postoffice/post-office.js';
import { openDynamoDbStore, type DynamoDbStore } from '../../../src/store/dynamodb/index.js';
import { MAX_BODY_BYTES } from '../../../src/store/dynamodb/codec.js';
import { itemKey, messageSk } from '../../../src/store/dynamodb/keys.js';
import { FakeClock } from '../../../tools/fake-clock.js';
import { localClient } from '../../../tools/dynamodb-local.js';
import { runCliProcess, type CliResult } from '../../support/cli.js';
import { injectFaults } from './fault-injection.js';
import { useDynamoDbLocal } from './local-stores.js';

const T = { timeout: 120_000 };
const local = useDynamoDbLocal();
const open = (table: string, withClient = false): Promise<DynamoDbStore> => local.open(table, withClient ? { client: localClient(local.ddb.endpoint) } : {}, { sweepShards: 2 });

async function rawItem(table: string, user: string, seq: number): Promise<boolean> {
  const out = await local.ddb.client.send(new GetItemCommand({ TableName: table, Key: itemKey(user, messageSk(seq)), ConsistentRead: true }));
  return out.Item !== undefined;
}

async function readSeqs(po: PostOffice, user: string, device: string): Promise<number[]> {
  const seqs: number[] = [];
  let afterSeq = 0;
  for (;;) {
    const page = await po.read(user, device, afterSeq, 1000);
    seqs.push(...page.messages.map((m) => m.seq));
    if (!page.more) return seqs;
    afterSeq = page.nextAfter;
  }
}

describe('dynamodb engine', () => {
  it('two nodes racing on one mailbox get distinct, gap-free seqs, all readable in order', T, async () => {
    const table = await local.ddb.newTable();
    const a = new PostOffice({ store: await open(table), sweeper: false });
    const b = new PostOffice({ store: await open(table), sweeper: false });
    await a.registerDevice('bob', 'phone');
    const sends = [];
    for (let i = 0; i < 40; i++) {
      sends.push(a.send({ to: 'bob', from: 'x', id: `a${i}`, body: `a${i}` }));
      sends.push(b.send({ to: 'bob', from: 'y', id: `b${i}`, body: `b${i}` }));
      if (i % 8 === 7) await Promise.all(sends.slice(-16)); // several rounds of racing batches
    }
    const seqs = (await Promise.all(sends)).map((r) => r.seq).sort((x, y) => x - y);
    assert.deepEqual(
      seqs,
      Array.from({ length: 80 }, (_, i) => i + 1),
    );
    assert.deepEqual(await readSeqs(b, 'bob', 'phone'), seqs);
    await a.close();
    await b.close();
  });

  it('stores a batch larger than one transaction in input order', T, async () => {
    const table = await local.ddb.newTable();
    const store = await open(table);
    const now = Date.now();
    const items = Array.from({ length: 130 }, (_, i) => ({ id: `m${i}`, from: 'x', to: 'bob', body: `b${i}`, bytes: 2 + String(i).length, sentAt: now, expiresAt: now + 60_000 }));
    items.push({ ...items[3]! }); // a duplicate inside the batch
    const out = await store.append(items, { maxMailboxMessages: 1000, maxMailboxBytes: 1 << 20 });
    assert.deepEqual(
      out.slice(0, 130).map((o) => (o.ok ? o.seq : -1)),
      Array.from({ length: 130 }, (_, i) => i + 1),
    );
    assert.deepEqual(out[130], { ok: true, seq: 4, duplicate: true, epoch: (out[0] as { epoch: string }).epoch });
  });

  it('refuses what cannot fit in an item with PAYLOAD_TOO_LARGE, and stores the largest body that fits', T, async () => {
    const table = await local.ddb.newTable();
    const store = await open(table);
    assert.ok(store.capabilities.maxBodyBytes !== undefined && store.capabilities.maxBodyBytes <= 400 * 1024);
    const po = new PostOffice({ store, sweeper: false, config: { limits: { maxBodyBytes: 1024 * 1024, maxMailboxBytes: 16 << 20 } } });
    const written = store.counters().keysWritten;
    await assert.rejects(po.send({ to: 'bob', from: 'a', id: 'big', body: 'x'.repeat(MAX_BODY_BYTES + 1) }), { code: 'PAYLOAD_TOO_LARGE' });
    assert.equal(store.counters().keysWritten, written);
    // The engine checks too, for callers that bypass the post office.
    const now = Date.now();
    const [direct] = await store.append([{ id: 'raw', from: 'a', to: 'bob', body: 'y'.repeat(401 * 1024), bytes: 401 * 1024, sentAt: now, expiresAt: now + 1000 }], {
      maxMailboxMessages: 10,
      maxMailboxBytes: 1 << 30,
    });
    assert.equal(direct?.ok, false);
    assert.equal(direct && !direct.ok ? direct.error.code : '', 'PAYLOAD_TOO_LARGE');
    // Longest ids and a multi-byte body right at the limit: DynamoDB Local accepts it.
    const user = 'u'.repeat(64);
    const body = 'é'.repeat(MAX_BODY_BYTES / 2);
    const r = await po.send({ to: user, from: 'f'.repeat(64), id: 'i'.repeat(128), body, toDevice: undefined });
    assert.equal(r.seq, 1);
    await po.registerDevice(user, 'd'.repeat(64), 'oldest');
    const page = await po.read(user, 'd'.repeat(64), 0, 10);
    assert.equal(page.messages[0]?.body, body);
    await po.close();
  });

  it('never delivers an expired message DynamoDB has not deleted yet; the sweeper removes it', T, async () => {
    const table = await local.ddb.newTable({ ttl: true });
    const store = await open(table);
    const clock = new FakeClock(Date.now());
    const po = new PostOffice({ store, clock, sweeper: false });
    await po.registerDevice('bob', 'phone');
    await po.send({ to: 'bob', from: 'a', id: 'short', body: 'gone soon', ttlSeconds: 5 });
    await po.send({ to: 'bob', from: 'a', id: 'long', body: 'stays', ttlSeconds: 3600 });
    clock.advance(6_000);
    assert.ok(await rawItem(table, 'bob', 1), 'native TTL has not deleted it (and is not relied on)');
    assert.deepEqual(
      (await po.read('bob', 'phone', 0, 10)).messages.map((m) => m.id),
      ['long'],
    );
    assert.equal(await po.sweepNow(), 1);
    assert.equal(await rawItem(table, 'bob', 1), false);
    assert.deepEqual([(await po.stats('bob')).pending, (await po.stats('bob')).pendingBytes], [1, 5]);
    await po.close();
  });

  it('an ack whose deletes fail leaves released messages: invisible, counted once, never counted again', T, async () => {
    const table = await local.ddb.newTable();
    const client = localClient(local.ddb.endpoint);
    const faults = injectFaults(client, { before: 0, after: 0 });
    const store = await openDynamoDbStore({ engine: 'dynamodb', table, endpoint: local.ddb.endpoint, sweepShards: 2 }, { client, retry: { maxAttempts: 2, baseDelayMs: 1 } });
    const clock = new FakeClock(Date.now());
    const po = new PostOffice({ store, clock, sweeper: false });
    await po.registerDevice('bob', 'phone');
    for (let i = 1; i <= 4; i++) await po.send({ to: 'bob', from: 'a', id: `m${i}`, body: 'xx', ttlSeconds: 60 });
    faults.set({ before: 1, after: 0, only: ['BatchWriteItem'] });
    assert.deepEqual(await po.ack('bob', 'phone', 2), { cursor: 2, deleted: 2 });
    faults.off();
    assert.ok(await rawItem(table, 'bob', 1), 'the delete really failed');
    assert.equal(store.capacity().orphaned, 2);
    await po.registerDevice('bob', 'tablet', 'oldest');
    assert.deepEqual(await readSeqs(po, 'bob', 'tablet'), [3, 4], 'released messages are never shown, even to a new device');
    assert.equal((await po.stats('bob')).pending, 2);
    clock.advance(61_000);
    assert.equal(await po.sweepNow(), 2, 'the two live messages expired; the released ones are not counted again');
    assert.equal(await rawItem(table, 'bob', 3), false);
    assert.deepEqual([(await po.stats('bob')).pending, (await po.stats('bob')).pendingBytes], [0, 0], 'no double count');
    // Released items at or below the floor are left to native TTL (their `ttl` attribute).
    assert.deepEqual(await readSeqs(po, 'bob', 'tablet'), []);
    await po.close();
    client.destroy();
  });

  it('a Query that misses a write still being applied never makes a reader skip it', T, async () => {
    const table = await local.ddb.newTable();
    const client = localClient(local.ddb.endpoint);
    // Emulate read-committed partial visibility: the first Query answers without seq 2.
    let hidden = 0;
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        const items = (out.output as { Items?: Array<Record<string, { S?: string }>> }).Items;
        if ((context as { commandName?: string }).commandName === 'QueryCommand' && hidden === 0 && items && items.length >= 3) {
          const at = items.findIndex((it) => it.sk?.S === messageSk(2));
          if (at >= 0) {
            items.splice(at, 1);
            hidden++;
          }
        }
        return out;
      },
      { step: 'finalizeRequest', name: 'hideOneItem' },
    );
    const store = await openDynamoDbStore({ engine: 'dynamodb', table, endpoint: local.ddb.endpoint, sweepShards: 2 }, { client });
    const po = new PostOffice({ store, sweeper: false });
    await po.registerDevice('bob', 'phone');
    for (let i = 1; i <= 4; i++) await po.send({ to: 'bob', from: 'a', id: `m${i}`, body: 'x' });
    const page = await po.read('bob', 'phone', 0, 10);
    assert.equal(hidden, 1, 'the item was hidden once');
    assert.deepEqual(
      page.messages.map((m) => m.seq),
      [1, 2, 3, 4],
    );
    await po.close();
    client.destroy();
  });

  it('gaps left by deleted messages are checked a bounded number at a time, and passed', T, async () => {
    const table = await local.ddb.newTable();
    const store = await open(table);
    const po = new PostOffice({ store, sweeper: false });
    await po.registerDevice('bob', 'phone');
    await po.registerDevice('bob', 'tablet', 'oldest');
    const now = Date.now();
    const targeted = Array.from({ length: 150 }, (_, i) => ({ id: `t${i}`, from: 'a', to: 'bob', toDevice: 'phone', body: 'x', bytes: 1, sentAt: now, expiresAt: now + 60_000 }));
    await store.append(targeted, { maxMailboxMessages: 1000, maxMailboxBytes: 1 << 20 });
    await po.ack('bob', 'phone', 150); // deletes all 150: only the phone was shown them
    await po.send({ to: 'bob', from: 'a', id: 'last', body: 'for both' });
    const first = await po.read('bob', 'tablet', 0, 10);
    assert.deepEqual([first.messages.length, first.more, first.nextAfter], [0, true, 99]);
    const second = await po.read('bob', 'tablet', first.nextAfter, 10);
    assert.deepEqual(
      second.messages.map((m) => m.id),
      ['last'],
    );
    assert.equal(second.more, false);
    await po.close();
  });

  it('a gap notice costs no request of its own: the read returning it and the ack clearing it cost what they cost without one', T, async () => {
    const table = await local.ddb.newTable({ ttl: false });
    const store = await open(table);
    const clock = new FakeClock();
    const po = new PostOffice({ store, clock, sweeper: false });
    // bob and eve (ids of one length) each hold one expired message, then one live message;
    // bob's expired message is swept (a notice), eve's was acked before it expired.
    for (const user of ['bob', 'eve']) {
      await po.registerDevice(user, 'phone');
      await po.send({ to: user, from: 'a', id: 'short', body: 'x', ttlSeconds: 60 });
      await po.send({ to: user, from: 'a', id: 'long', body: 'y', ttlSeconds: 3600 });
    }
    await po.ack('eve', 'phone', 1);
    clock.advance(60_000);
    assert.equal(await po.sweepNow(), 1);
    const cost = async (user: string): Promise<{ read: number[]; ack: number[]; gap: unknown }> => {
      const c0 = store.capacity();
      const page = await po.read(user, 'phone', 0, 10);
      const c1 = store.capacity();
      assert.deepEqual(
        page.messages.map((m) => m.seq),
        [2],
      );
      await po.ack(user, 'phone', 2);
      const c2 = store.capacity();
      return { read: [c1.requests - c0.requests, c1.readUnits - c0.readUnits], ack: [c2.requests - c1.requests, c2.writeUnits - c1.writeUnits], gap: page.gap };
    };
    const bob = await cost('bob');
    const eve = await cost('eve');
    assert.deepEqual(bob.gap, { from: 1, to: 1, count: 1, reasons: ['expired'] });
    assert.equal(eve.gap, undefined);
    assert.deepEqual(bob.read, eve.read, 'the notice rides in the meta item the read gets anyway');
    assert.deepEqual(bob.ack, eve.ack, 'the ack that clears it is the same one UpdateItem');
    assert.deepEqual(bob.ack, [1, 1]);
    assert.equal((await po.read('bob', 'phone', 0, 10)).gap, undefined);
    await po.close();
  });

  it("acks of a user's devices on two nodes, alternating, read nothing: another device's ack does not break an ack's condition", T, async () => {
    const table = await local.ddb.newTable();
    const stores = [await open(table), await open(table)];
    const [a, b] = stores.map((store) => new PostOffice({ store, sweeper: false })) as [PostOffice, PostOffice];
    const acks = async (steps: Array<() => Promise<unknown>>): Promise<{ requests: number; readUnits: number; failed: number }> => {
      const before = stores.map((s) => s.capacity());
      for (const step of steps) await step();
      const after = stores.map((s) => s.capacity());
      const sum = (k: 'requests' | 'readUnits' | 'failedWrites'): number => after.reduce((acc, c, i) => acc + c[k] - before[i]![k], 0);
      return { requests: sum('requests'), readUnits: sum('readUnits'), failed: sum('failedWrites') };
    };
    // Three devices; the tablet stays behind, so neither of the others' acks is the last:
    // each node's ack stands on its own read although the other node's ack moved the meta item.
    for (const d of ['phone', 'laptop', 'tablet']) await a.registerDevice('bob', d);
    for (let i = 1; i <= 6; i++) {
      const { seq } = await a.send({ to: 'bob', from: 'alice', id: `m${i}`, body: `hello ${i}` });
      await a.read('bob', 'phone', seq - 1, 10);
      await b.read('bob', 'laptop', seq - 1, 10);
      const order = i % 2 === 1 ? [() => a.ack('bob', 'phone', seq), () => b.ack('bob', 'laptop', seq)] : [() => b.ack('bob', 'laptop', seq), () => a.ack('bob', 'phone', seq)];
      assert.deepEqual(await acks(order), { requests: 2, readUnits: 0, failed: 0 }, `message ${i}`);
    }
    assert.equal((await b.stats('bob')).pending, 6, 'the tablet has acked nothing: everything is still held');
    // The tablet catches up on node b while phone and laptop stay on node a and b: every
    // message now goes with the last ack, which counts it once.
    await b.read('bob', 'tablet', 0, 10);
    assert.deepEqual(await acks([() => b.ack('bob', 'tablet', 6)]), { requests: 1, readUnits: 0, failed: 0 });
    assert.equal((await a.stats('bob')).pending, 0);
    // Two devices, both read before either acks: the second ack to land was computed
    // believing the other was behind, so its condition fails once; DynamoDB returns the
    // item with the failure and the ack is computed again from it: still no read.
    await b.removeDevice('bob', 'tablet');
    for (let i = 7; i <= 12; i++) {
      const { seq } = await b.send({ to: 'bob', from: i % 3 === 0 ? 'carol' : 'alice', id: `m${i}`, body: `hello ${i}` });
      await a.read('bob', 'phone', seq - 1, 10);
      await b.read('bob', 'laptop', seq - 1, 10);
      const order = i % 2 === 1 ? [() => a.ack('bob', 'phone', seq), () => b.ack('bob', 'laptop', seq)] : [() => b.ack('bob', 'laptop', seq), () => a.ack('bob', 'phone', seq)];
      assert.deepEqual(await acks(order), { requests: 3, readUnits: 0, failed: 1 }, `message ${i}`);
      const stats = await a.stats('bob');
      assert.equal(stats.pending, 0, `message ${i} went with the second ack`);
      assert.deepEqual(
        stats.devices.map((d) => d.cursor),
        [seq, seq],
      );
    }
    // Acks that do not overlap in time: each node read after the other's ack, nothing fails.
    for (let i = 13; i <= 16; i++) {
      const { seq } = await a.send({ to: 'bob', from: 'alice', id: `m${i}`, body: `hello ${i}` });
      const [first, second] = i % 2 === 1 ? (['phone', 'laptop'] as const) : (['laptop', 'phone'] as const);
      const node = (d: string): PostOffice => (d === 'phone' ? a : b);
      await node(first).read('bob', first, seq - 1, 10);
      const one = await acks([() => node(first).ack('bob', first, seq)]);
      await node(second).read('bob', second, seq - 1, 10);
      const two = await acks([() => node(second).ack('bob', second, seq)]);
      assert.deepEqual(
        [one, two],
        [
          { requests: 1, readUnits: 0, failed: 0 },
          { requests: 1, readUnits: 0, failed: 0 },
        ],
        `message ${i}`,
      );
    }
    const end = await b.stats('bob');
    assert.deepEqual([end.pending, end.pendingBytes], [0, 0]);
    await a.close();
    await b.close();
  });

  it('devices registered at once on two nodes: the device limit holds exactly, and a later device is one read and one write', T, async () => {
    const table = await local.ddb.newTable();
    const [s1, s2] = [await open(table), await open(table)] as const;
    await s1.registerDevice('bob', 'd0', 'auto', 1, 4);
    const outcomes = await Promise.allSettled(['d1', 'd2', 'd3', 'd4', 'd5', 'd6'].map((d, i) => (i % 2 === 0 ? s1 : s2).registerDevice('bob', d, 'auto', 2, 4)));
    const created = outcomes.filter((o) => o.status === 'fulfilled' && o.value.created).length;
    const refused = outcomes.filter((o) => o.status === 'rejected' && (o.reason as { code?: string }).code === 'FORBIDDEN').length;
    assert.deepEqual([created, refused], [3, 3]);
    assert.equal((await s2.listDevices('bob')).length, 4);
    // A later device while another node acks: the registration reads the meta item and
    // writes it once, not conditioned on the version the ack moves.
    const po = new PostOffice({ store: s1, sweeper: false });
    await po.registerDevice('eve', 'phone');
    const { seq } = await po.send({ to: 'eve', from: 'a', id: 'm1', body: 'x' });
    await po.read('eve', 'phone', 0, 10);
    const c0 = s2.capacity();
    const [reg] = await Promise.all([s2.registerDevice('eve', 'laptop', 'oldest', 3, 4), po.ack('eve', 'phone', seq)]);
    const c1 = s2.capacity();
    assert.equal(reg.created, true);
    assert.deepEqual([c1.requests - c0.requests, c1.failedWrites - c0.failedWrites], [2, 0]);
    // Whichever landed first, the counters agree with what the laptop (started at the
    // oldest kept message) is shown: the message is still counted exactly when the
    // registration came first and the phone's ack therefore released nothing.
    const page = await new PostOffice({ store: s2, sweeper: false }).read('eve', 'laptop', 0, 10);
    assert.equal(reg.cursor, 0);
    assert.equal((await s2.stats('eve', Date.now())).pending, page.messages.length);
    await po.close();
  });

  it('reports consumed capacity and counts the items a read examined', T, async () => {
    const table = await local.ddb.newTable();
    const store = await open(table);
    const po = new PostOffice({ store, sweeper: false });
    await po.registerDevice('bob', 'phone');
    await po.send({ to: 'bob', from: 'a', id: 'm1', body: 'hello' });
    const c0 = store.capacity();
    assert.ok(c0.writeUnits > 0 && c0.readUnits > 0, JSON.stringify(c0));
    const k0 = store.counters().keysRead;
    await po.read('bob', 'phone', 0, 10);
    assert.equal(store.counters().keysRead - k0, 2, 'the meta item and one message');
    assert.ok(store.capacity().readUnits > c0.readUnits);
    await po.close();
  });
});

/** The real CLI in a child process, without AWS credentials (DynamoDB Local gets dummy ones). */
const pobox = (...args: string[]): Promise<CliResult> => runCliProcess(args, { AWS_ACCESS_KEY_ID: '', AWS_PROFILE: '' });

describe('pobox dynamodb', () => {
  it('create-table makes an on-demand table with the index and TTL, and is idempotent', T, async () => {
    const name = `${local.ddb.prefix}-cli`;
    const first = await pobox('dynamodb', 'create-table', '--table', name, '--endpoint', local.ddb.endpoint);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^created: /);
    const again = await pobox('dynamodb', 'create-table', '--table', name, '--endpoint', local.ddb.endpoint);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^already exists: /);
    const d = await local.ddb.client.send(new DescribeTableCommand({ TableName: name }));
    assert.equal(d.Table?.TableStatus, 'ACTIVE');
    assert.equal(d.Table?.BillingModeSummary?.BillingMode, 'PAY_PER_REQUEST');
    assert.deepEqual(
      d.Table?.GlobalSecondaryIndexes?.map((i) => i.IndexName),
      ['gsi1'],
    );
    const ttl = await local.ddb.client.send(new DescribeTimeToLiveCommand({ TableName: name }));
    assert.equal(ttl.TimeToLiveDescription?.AttributeName, 'ttl');
    const bad = await pobox('dynamodb', 'create-table', '--table', 'a/b');
    assert.equal(bad.code, 2, 'a bad name is a BAD_REQUEST');
    assert.match(bad.stderr, /BAD_REQUEST.*table/);
  });

  it('table-definition prints a CreateTable input and a CloudFormation resource', T, async () => {
    const plain = JSON.parse((await pobox('dynamodb', 'table-definition', '--table', 'mail')).stdout) as Record<string, any>;
    const cfn = JSON.parse((await pobox('dynamodb', 'table-definition', '--table', 'mail', '--format', 'cloudformation')).stdout) as Record<string, any>;
    assert.equal(plain.TableName, 'mail');
    assert.equal(plain.BillingMode, 'PAY_PER_REQUEST');
    assert.deepEqual(
      plain.KeySchema.map((k: { AttributeName: string }) => k.AttributeName),
      ['pk', 'sk'],
    );
    assert.equal(cfn.Resources.PoboxTable.Type, 'AWS::DynamoDB::Table');
    assert.deepEqual(cfn.Resources.PoboxTable.Properties.TimeToLiveSpecification, { AttributeName: 'ttl', Enabled: true });
  });
});
