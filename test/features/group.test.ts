/**
 * Group sends over real sockets (embedded engine): one WebSocket frame or one HTTP
 * request to up to limits.maxRecipients users, stored with ONE write-ahead log record
 * and ONE durable commit (the engine's own counters, not timing), one seq per member,
 * one `accepted` with a result per member, a full mailbox refusing only its owner, the
 * same id deduplicated per member, and every online member woken.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import type { ClientMessage, PoboxClient, RecipientResult } from '../../src/client/index.js';
import { mintToken } from '../../src/gateway/auth.js';
import { openLmdbStore, type LmdbStore } from '../../src/store/lmdb/index.js';
import { Resources, startGateway, tempDir, type TestGateway } from '../client/gateway-helpers.js';
import { waitFor } from '../support/wait.js';

const members = (n: number, prefix: string): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

async function post(gw: TestGateway, token: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${gw.server.url}/v1/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

const seqs = (results: readonly RecipientResult[] | undefined): Array<number | string> => (results ?? []).map((r) => ('seq' in r ? r.seq : r.error.code));

describe('group sends over WebSocket and HTTP (lmdb)', () => {
  const res = new Resources();
  let gw: TestGateway;
  let store: LmdbStore;
  let alice: PoboxClient;

  before(async () => {
    const dir = tempDir(res);
    store = await openLmdbStore({ path: join(dir, 'store') });
    res.add(() => store.close());
    gw = await startGateway(res, { dataDir: dir, config: { postOffice: { limits: { maxMailboxMessages: 3, senderShare: 1 } } }, start: { store } });
    alice = await gw.client('alice', 'phone');
    // Registered and idle before anything is counted.
    await new Promise<void>((resolve) => alice.once('caughtUp', () => resolve()));
  });
  after(() => res.closeAll());

  it('a 1,000-member group send over WebSocket is one log record and one durable commit, one seq per member', async () => {
    const to = members(1000, 'big');
    const before = store.walCounters();
    const r = await alice.send({ to, body: 'hello, everyone', id: 'big-1' });
    const after = store.walCounters();
    assert.deepEqual([after.records - before.records, after.commits - before.commits], [1, 1], 'the whole group is one record in one fsync');
    assert.deepEqual([r.seq, r.duplicate], [0, false]);
    assert.deepEqual(
      r.results?.map((x) => x.to),
      to,
    );
    assert.deepEqual(
      seqs(r.results),
      to.map(() => 1),
    );
    for (const u of [to[0]!, to[499]!, to[999]!]) assert.deepEqual([(await gw.server.postOffice.stats(u)).pending, (await gw.server.postOffice.stats(u)).lastSeq], [1, 1]);

    // The same id again: a duplicate for every member, nothing logged.
    const again = await alice.send({ to, body: 'hello, everyone', id: 'big-1' });
    assert.ok(again.results?.every((x) => 'seq' in x && x.seq === 1 && x.duplicate));
    assert.equal(store.walCounters().records, after.records);
  });

  it('wakes every online member, who each get the message once; a full mailbox refuses only its owner', async () => {
    const to = members(5, 'small');
    const got = new Map<string, ClientMessage[]>();
    const online: PoboxClient[] = [];
    for (const u of to.slice(0, 3)) {
      const c = await gw.client(u, 'laptop');
      online.push(c);
      got.set(u, []);
      c.on('message', (m) => void got.get(u)!.push(m));
      await new Promise<void>((resolve) => c.once('caughtUp', () => resolve()));
    }
    // small-4's mailbox is full (quota 3).
    for (let i = 0; i < 3; i++) await gw.server.postOffice.send({ to: to[4]!, from: 'x', id: `fill-${i}`, body: 'b' });
    const r = await alice.send({ to, body: 'live', id: 'small-1' });
    assert.deepEqual(seqs(r.results), [1, 1, 1, 1, 'MAILBOX_FULL']);
    const refused = r.results![4]!;
    assert.ok('error' in refused && refused.to === to[4] && /full/.test(refused.error.message));
    await waitFor(() => [...got.values()].every((m) => m.length === 1), 'every online member got the message');
    for (const [u, msgs] of got) assert.deepEqual([msgs[0]!.id, msgs[0]!.from, msgs[0]!.body, msgs[0]!.seq], ['small-1', 'alice', 'live', 1], u);
    // Their acks are stored before the next test counts log records.
    await waitFor(() => online.every((c) => c.stats.serverCursor === 1), 'every online member acked');
  });

  it('over HTTP: one request, 201 with a result per member; a resend is 200 with duplicates', async () => {
    const to = members(300, 'http');
    const token = await mintToken({ secret: gw.secret, user: 'bob', device: 'web' });
    const before = store.walCounters();
    const first = await post(gw, token, { to, id: 'h-1', body: 'via http', ttlSeconds: 60 });
    assert.equal(first.status, 201);
    assert.equal(store.walCounters().records - before.records, 1);
    assert.deepEqual(first.body.id, 'h-1');
    assert.deepEqual(first.body.durable, true);
    assert.deepEqual(
      first.body.results,
      to.map((u) => ({ to: u, seq: 1, duplicate: false })),
    );
    const again = await post(gw, token, { to, id: 'h-1', body: 'via http' });
    assert.equal(again.status, 200);
    assert.ok(again.body.results.every((x: { duplicate: boolean }) => x.duplicate));
  });

  it('refuses a bad group as a whole with a typed error naming the field: over the limit, repeated, with toDevice, ephemeral', async () => {
    const token = await mintToken({ secret: gw.secret, user: 'bob', device: 'web' });
    const cases: Array<[unknown, string]> = [
      [{ to: members(1001, 'over'), id: 'bad-1', body: 'x' }, 'to'],
      [{ to: ['u1', 'u2', 'u1'], id: 'bad-2', body: 'x' }, 'to'],
      [{ to: [], id: 'bad-3', body: 'x' }, 'to'],
      [{ to: ['u1', 'u2'], toDevice: 'phone', id: 'bad-4', body: 'x' }, 'toDevice'],
      [{ to: ['u1', 'u2'], ephemeral: true, id: 'bad-5', body: 'x' }, 'to'],
    ];
    for (const [body, field] of cases) {
      const r = await post(gw, token, body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.deepEqual([r.body.error?.code, r.body.error?.field], ['BAD_REQUEST', field]);
      const id = (body as { id: string }).id;
      await assert.rejects(
        alice.send({ ...(body as { to: string[]; body: string }), id: `${id}-ws` }),
        (e: { code?: string; field?: string }) => e.code === 'BAD_REQUEST' && e.field === field,
      );
    }
    for (const u of ['u1', 'u2', 'over-0']) assert.equal((await gw.server.postOffice.stats(u)).lastSeq, 0, `${u} got nothing`);
  });
});
