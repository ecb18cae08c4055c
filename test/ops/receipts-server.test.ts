/**
 * Delivery receipts end to end: alice sends with `receipt: true` and goes offline; bob
 * comes online, receives and acks; when alice reconnects her receipts are waiting, from
 * the system sender, one per acking device, in order.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RECEIPT_SENDER, type ReceiptBody } from '../../src/postoffice/receipts.js';
import { parseProm, sample } from '../support/prom-text.js';
import { startOpsServer } from './server-helpers.js';
import { RawClient } from '../support/raw-client.js';

test('receipts reach an offline sender when she reconnects', async () => {
  const s = await startOpsServer();
  const clients: RawClient[] = [];
  try {
    const { wsUrl } = s.server;
    let alice = await RawClient.session(wsUrl, await s.token('alice', 'laptop'));
    clients.push(alice);
    const a1 = await alice.sendAndWait({ id: 'r1', to: 'bob', body: 'with receipt', receipt: true });
    await alice.sendAndWait({ id: 'n1', to: 'bob', body: 'no receipt' });
    const a2 = await alice.sendAndWait({ id: 'r2', to: 'bob', body: 'with receipt too', receipt: true });
    assert.equal(a1.type, 'accepted');
    assert.equal(a2.type, 'accepted');
    await alice.close();

    // bob's phone (his first device) gets all three; his tablet, added later, starts at the head.
    const phone = await RawClient.session(wsUrl, await s.token('bob', 'phone'));
    clients.push(phone);
    const msgs = phone.messages();
    assert.deepEqual(
      msgs.map((m) => [m.id, m.receipt === true]),
      [
        ['r1', true],
        ['n1', false],
        ['r2', true],
      ],
    );
    const tablet = await RawClient.session(wsUrl, await s.token('bob', 'tablet'));
    clients.push(tablet);
    assert.deepEqual(tablet.messages(), []);
    phone.send({ type: 'ack', upTo: msgs[2]!.seq });
    await phone.waitFor((f) => f.type === 'acked', 'phone acked');
    await phone.close();

    // alice reconnects: two receipts (r1, r2 acked by the phone; the tablet never saw them).
    alice = await RawClient.session(wsUrl, await s.token('alice', 'laptop'));
    clients.push(alice);
    const receipts = alice.messages();
    assert.equal(receipts.length, 2);
    for (const r of receipts) assert.equal(r.from, RECEIPT_SENDER);
    const bodies = receipts.map((r) => JSON.parse(r.body as string) as ReceiptBody);
    assert.deepEqual(
      bodies.map((b) => [b.type, b.id, b.to, b.device, b.seq]),
      [
        ['receipt', 'r1', 'bob', 'phone', msgs[0]!.seq],
        ['receipt', 'r2', 'bob', 'phone', msgs[2]!.seq],
      ],
    );
    for (const b of bodies) assert.ok(b.ackedAt >= msgs[0]!.sentAt);

    // She acks them; they are gone, and the receipt counter says 2 stored.
    alice.send({ type: 'ack', upTo: receipts[1]!.seq });
    await alice.waitFor((f) => f.type === 'acked', 'alice acked');
    const m = parseProm((await s.get('/metrics')).text);
    assert.equal(sample(m, 'pobox_receipts_total', { outcome: 'stored' }), 2);
    assert.equal((await s.server.postOffice.stats('alice')).pending, 0);
  } finally {
    for (const c of clients) await c.close();
    await s.close();
  }
});
