/**
 * Fair quotas over real sockets, on both engines: a sender holding its share of Bob's
 * mailbox is refused with SENDER_QUOTA (WebSocket error frame, HTTP 429, an SDK
 * PoboxError that says "retry later") while another sender still reaches Bob; an API key
 * configured as exempt is never refused for the share; Bob's acks give the share back.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PoboxError } from '../../src/client/index.js';
import type { MailboxStore } from '../../src/store/contract.js';
import { openDynamoDbStore } from '../../src/store/dynamodb/index.js';
import { startDynamoDbLocal, type DynamoDbLocal } from '../../tools/dynamodb-local.js';
import { Device, RawDevice, waitFor } from '../multinode/devices.js';
import { SEND_KEY, startTestServer, type TestServer } from '../gateway/helpers.js';

const EXEMPT_KEY = 'exempt-key-0123456789-abcdefghijk';

type Engine = 'lmdb' | 'dynamodb';

async function post(server: TestServer, key: string, body: object): Promise<{ status: number; body: { error?: { code: string }; seq?: number } }> {
  const res = await fetch(`${server.url}/v1/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as { error?: { code: string }; seq?: number } };
}

for (const engine of ['lmdb', 'dynamodb'] as Engine[]) {
  describe(`fair quotas over sockets (${engine})`, () => {
    let ddb: DynamoDbLocal | undefined;
    let store: MailboxStore | undefined;
    let server: TestServer;

    before(async () => {
      if (engine === 'dynamodb') {
        ddb = await startDynamoDbLocal();
        const table = await ddb.newTable({ ttl: false });
        store = await openDynamoDbStore({ engine: 'dynamodb', table, endpoint: ddb.endpoint, sweepShards: 2 });
      }
      server = await startTestServer(
        {
          postOffice: { limits: { maxMailboxMessages: 8, senderShare: 0.25 } },
          auth: {
            apiKeys: [
              { key: SEND_KEY, name: 'backend', scopes: ['send'] },
              { key: EXEMPT_KEY, name: 'notifier', scopes: ['send'], senderQuotaExempt: true },
            ],
          },
        },
        store ? { store } : {},
      );
    });
    after(async () => {
      await server?.stop();
      await store?.close();
      await ddb?.stop();
    });

    it('one sender at its share is refused with SENDER_QUOTA while a second sender still gets through', async () => {
      const bob = new RawDevice();
      await bob.open(server.wsUrl, await server.token('bob', 'phone'));
      await bob.waitFrame((f) => f.type === 'caughtUp', 'bob caught up');

      const alice = new Device([server.wsUrl], await server.token('alice', 'web'));
      const carol = new Device([server.wsUrl], await server.token('carol', 'web'));
      try {
        await alice.client.send({ to: 'bob', body: 'one', id: 'a1' });
        await alice.client.send({ to: 'bob', body: 'two', id: 'a2' });
        const refused = await alice.client.send({ to: 'bob', body: 'three', id: 'a3' }).then(
          () => assert.fail('the third send of alice must be refused'),
          (e: unknown) => e,
        );
        assert.ok(refused instanceof PoboxError);
        assert.equal(refused.code, 'SENDER_QUOTA');
        assert.equal(refused.retryable, true);
        const c = await carol.client.send({ to: 'bob', body: 'hi from carol', id: 'c1' });
        assert.equal(c.seq, 3);

        // HTTP: a backend key sending as alice is held to alice's share (429); an exempt key is not.
        const viaKey = await post(server, SEND_KEY, { from: 'alice', to: 'bob', id: 'a3', body: 'three' });
        assert.deepEqual([viaKey.status, viaKey.body.error?.code], [429, 'SENDER_QUOTA']);
        const exempt = await post(server, EXEMPT_KEY, { from: 'alice', to: 'bob', id: 'n1', body: 'notice' });
        assert.deepEqual([exempt.status, exempt.body.seq], [201, 4]);

        // Bob drains and acks: alice's share is back.
        await waitFor(() => bob.of('message').length === 4, 'bob got four messages');
        bob.send({ type: 'ack', upTo: 4 });
        await bob.waitFrame((f) => f.type === 'acked' && f.cursor === 4, 'bob acked 4');
        const again = await alice.client.send({ to: 'bob', body: 'three', id: 'a3' });
        assert.equal(again.seq, 5);
        await waitFor(() => bob.of('message').length === 5, 'bob got it live');
        assert.deepEqual(
          bob.of('message').map((m) => [m.from, m.id]),
          [
            ['alice', 'a1'],
            ['alice', 'a2'],
            ['carol', 'c1'],
            ['alice', 'n1'],
            ['alice', 'a3'],
          ],
        );
      } finally {
        alice.close();
        carol.close();
        await bob.cut();
      }
    });
  });
}
