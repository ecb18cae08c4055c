/**
 * The README's client example: alice sends bob a message; bob receives it and acks it.
 *
 *   POBOX_URL=ws://127.0.0.1:8080/ws \
 *   ALICE_TOKEN=$(npx pobox token --user alice --device laptop) \
 *   BOB_TOKEN=$(npx pobox token --user bob --device phone) \
 *   npx tsx examples/client.ts
 *
 * (or pass the URL and the two tokens as arguments). The test suite runs this file
 * against a started server (test/client/example.test.ts).
 */
import { randomUUID } from 'node:crypto';
import { WebSocket } from 'ws'; // Node 20 has no global WebSocket; browsers and Node >= 22 do
import { connect, type ClientMessage } from '../src/client/index.js'; // in your app: 'pobox/client'

const [url = process.env.POBOX_URL, aliceToken = process.env.ALICE_TOKEN, bobToken = process.env.BOB_TOKEN] = process.argv.slice(2);
const bobUser = process.env.BOB_USER ?? 'bob';
if (!url || !aliceToken || !bobToken) {
  console.error('usage: POBOX_URL=ws://host:port/ws ALICE_TOKEN=... BOB_TOKEN=... tsx examples/client.ts');
  process.exit(2);
}

const bob = connect(url, bobToken, { WebSocket });
const alice = connect(url, aliceToken, { WebSocket });
for (const [who, client] of [
  ['alice', alice],
  ['bob', bob],
] as const) {
  client.on('error', (err) => console.error(`${who}: ${err.code}: ${err.message}`));
}
const giveUp = setTimeout(() => {
  console.error('no message within 10 s');
  process.exit(1);
}, 10_000);

// Our own id: the server dedupes on it, so a resend after a reconnect cannot store it twice.
const id = `example-${randomUUID()}`;
const received = new Promise<ClientMessage>((resolve) => {
  // The message is acked when this handler returns (or its promise resolves).
  bob.on('message', (m) => {
    if (m.id === id) resolve(m);
  });
});

await bob.ready();
const { seq } = await alice.send({ to: bobUser, body: 'hello from alice', id }); // resolves once durable
const message = await received;
console.log(`bob received "${message.body}" from ${message.from} (seq ${seq})`);

clearTimeout(giveUp);
alice.close();
bob.close(); // sends bob's pending ack before closing
