/**
 * Acks and delivery receipts through the gateway: an ack of messages this connection sent,
 * none of which asked for a receipt, commits without reading the mailbox; any other ack
 * (here: one for messages seen on an earlier connection) still reads the range and stores
 * every receipt it owes (src/postoffice/receipts.ts, DeviceSession.flushAcks).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ReadPage } from '../../src/core/types.js';
import { parseReceipt } from '../../src/postoffice/receipts.js';
import type { MailboxStore, ReadRequest } from '../../src/store/contract.js';
import { openStore } from '../../src/store/open.js';
import { startTestServer } from './helpers.js';
import { RawClient } from '../support/raw-client.js';
import { tempDir } from '../support/temp-dir.js';

/** The store, with every read of `user`'s mailbox counted (the real engine answers it). */
function countingReads(inner: MailboxStore, user: string): { store: MailboxStore; reads: () => number } {
  let reads = 0;
  const store = new Proxy(inner, {
    get(target, key) {
      if (key === 'read' || key === 'readIfRegistered')
        return async (req: ReadRequest): Promise<ReadPage | undefined> => {
          if (req.user === user) reads++;
          return key === 'read' ? target.read(req) : target.readIfRegistered(req);
        };
      const v: unknown = Reflect.get(target, key);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { store, reads: () => reads };
}

test('an ack of messages this connection sent, none asking for a receipt, reads nothing; one that covers a receipt reads and stores it', async () => {
  const dir = tempDir().path;
  const inner = await openStore({ engine: 'lmdb', path: join(dir, 'lmdb') });
  const { store, reads } = countingReads(inner, 'bob');
  // No safety poll: the only reads of bob's mailbox are the session's and the receipts'.
  const s = await startTestServer({ session: { safetyPollMs: 0 } }, { store }, join(dir, 'srv'));
  try {
    await s.postOffice.registerDevice('alice', 'web');
    const bob = await RawClient.session(s.url, await s.token('bob', 'phone'));
    for (let i = 0; i < 3; i++) await s.postOffice.send({ from: 'alice', to: 'bob', id: `plain-${i}`, body: 'no receipt' });
    await bob.until(() => bob.messages().length === 3, 'three live messages');
    await bob.roundTrip();

    let before = reads();
    bob.send({ type: 'ack', upTo: bob.messages()[2]!.seq });
    await bob.waitFor((f) => f.type === 'acked' && f.cursor === bob.messages()[2]!.seq, 'acked');
    assert.equal(reads(), before, 'the common ack does not read the mailbox');
    assert.equal((await s.postOffice.stats('alice')).pending, 0, 'and stores no receipt');

    // The same connection, a message asking for a receipt: its ack reads, and alice gets one.
    await s.postOffice.send({ from: 'alice', to: 'bob', id: 'asks', body: 'receipt please', receipt: true });
    await bob.until(() => bob.messages().length === 4, 'the receipt-asking message');
    await bob.roundTrip();
    before = reads();
    bob.send({ type: 'ack', upTo: bob.messages()[3]!.seq });
    await bob.waitFor((f) => f.type === 'acked' && f.cursor === bob.messages()[3]!.seq, 'acked');
    assert.ok(reads() > before, 'an ack covering a receipt-asking message reads the range');
    const page = await s.postOffice.read('alice', 'web', 0, 10);
    assert.deepEqual(
      page.messages.map((m) => parseReceipt(m)?.id),
      ['asks'],
    );

    // Once that is acked, plain messages are again acked without a read.
    await s.postOffice.send({ from: 'alice', to: 'bob', id: 'plain-3', body: 'no receipt' });
    await bob.until(() => bob.messages().length === 5, 'a fifth message');
    await bob.roundTrip();
    before = reads();
    bob.send({ type: 'ack', upTo: bob.messages()[4]!.seq });
    await bob.waitFor((f) => f.type === 'acked' && f.cursor === bob.messages()[4]!.seq, 'acked');
    assert.equal(reads(), before);
    await bob.close();
  } finally {
    await s.stop();
    await inner.close();
  }
});

test('an ack for a receipt-asking message delivered on an earlier connection still stores its receipt', async () => {
  const s = await startTestServer({ session: { safetyPollMs: 0 } });
  try {
    await s.postOffice.registerDevice('alice', 'web');
    const first = await RawClient.session(s.url, await s.token('bob', 'phone'));
    await s.postOffice.send({ from: 'alice', to: 'bob', id: 'asks', body: 'receipt please', receipt: true });
    await s.postOffice.send({ from: 'alice', to: 'bob', id: 'plain', body: 'no receipt' });
    await first.until(() => first.messages().length === 2, 'both messages on the first connection');
    const upTo = first.messages()[1]!.seq;
    await first.close(); // gone before it acked

    // The next connection acks right after hello, before it has sent anything itself.
    const second = await RawClient.open(s.url, await s.token('bob', 'phone'));
    second.send({ type: 'hello', protocol: 1 });
    second.send({ type: 'ack', upTo });
    await second.waitFor((f) => f.type === 'acked' && f.cursor === upTo, 'acked');
    const page = await s.postOffice.read('alice', 'web', 0, 10);
    assert.deepEqual(
      page.messages.map((m) => [parseReceipt(m)?.id, parseReceipt(m)?.device]),
      [['asks', 'phone']],
    );
    await second.close();
  } finally {
    await s.stop();
  }
});
