/**
 * Multi-node behaviour, written once and run on every kind of cluster: several servers
 * in one process over an in-memory bus, the same over Redis, and separate `pobox serve`
 * processes over DynamoDB Local and Redis.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Device, RawDevice, waitFor } from './devices.js';

export interface Cluster {
  /** WebSocket URL of each node. */
  readonly nodes: readonly string[];
  token(user: string, device: string): Promise<string>;
}

/** User ids no other scenario uses (clusters may share a store across scenarios). */
export function names(...who: string[]): string[] {
  const ns = randomUUID().slice(0, 8);
  return who.map((w) => `${w}-${ns}`);
}

export class Devices {
  private readonly all: Device[] = [];
  constructor(private readonly cluster: Cluster) {}
  async open(user: string, device: string, nodeIndexes: number[]): Promise<Device> {
    const d = new Device(
      nodeIndexes.map((i) => this.cluster.nodes[i]!),
      await this.cluster.token(user, device),
    );
    this.all.push(d);
    return d;
  }
  closeAll(): void {
    for (const d of this.all) d.close();
  }
}

/** Each message handed to the application once, in seq order, with exactly these ids. */
export function assertExactlyOnce(d: Device, ids: string[], who: string): void {
  const seqs = d.messages.map((m) => m.seq);
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, `${who}: seqs strictly increase (${seqs[i - 1]} then ${seqs[i]})`);
  assert.deepEqual(
    d.messages.map((m) => m.id),
    ids,
    `${who}: every message once, in order`,
  );
}

/** alice on node 1 sends to bob on node 3; bob, already caught up, receives it live. */
export async function crossNodeLive(c: Cluster): Promise<void> {
  const [alice, bob] = names('alice', 'bob');
  const devs = new Devices(c);
  try {
    const b = await devs.open(bob!, 'phone', [2]);
    await b.waitCaughtUp();
    assert.equal(b.messages.length, 0);
    const a = await devs.open(alice!, 'laptop', [0]);
    const r = await a.client.send({ to: bob!, body: 'hello from node 1', id: 'm-1' });
    await b.waitMessages(1);
    assert.equal(b.messages[0]!.body, 'hello from node 1');
    assert.equal(b.messages[0]!.from, alice);
    assert.equal(b.messages[0]!.seq, r.seq);
    assert.deepEqual(b.nodes, [c.nodes[2]], 'bob stayed on node 3 and got it there');
    assert.deepEqual(a.nodes, [c.nodes[0]]);
  } finally {
    devs.closeAll();
  }
}

/**
 * bob receives a stream on node 3 and is moved to node 2 mid-stream (his connection is
 * cut; the SDK goes to its next URL): he loses nothing and the application sees nothing twice.
 */
export async function moveMidStream(c: Cluster, total = 60): Promise<void> {
  const [alice, bob] = names('alice', 'bob');
  const devs = new Devices(c);
  try {
    const b = await devs.open(bob!, 'phone', [2, 1]);
    await b.waitCaughtUp();
    const a = await devs.open(alice!, 'laptop', [0]);
    const ids: string[] = [];
    for (let i = 0; i < total; i++) {
      const id = `m-${i}`;
      ids.push(id);
      await a.client.send({ to: bob!, body: `message ${i}`, id });
      if (i === Math.floor(total / 2)) {
        await b.waitMessages(Math.floor(total / 4));
        b.cut();
      }
    }
    await b.waitMessages(total);
    await waitFor(() => b.nodes.length >= 2, 'bob welcomed on a second node');
    assert.deepEqual(b.nodes.slice(0, 2), [c.nodes[2], c.nodes[1]], 'bob moved from node 3 to node 2');
    assertExactlyOnce(b, ids, 'bob');
  } finally {
    devs.closeAll();
  }
}

/**
 * The same move at the wire level: what bob acked on node 3 is never sent again on
 * node 2, everything else is, and nothing is skipped.
 */
export async function moveMidStreamRaw(c: Cluster, total = 40): Promise<void> {
  const [alice, bob] = names('alice', 'bob');
  const devs = new Devices(c);
  const token = await c.token(bob!, 'phone');
  const first = new RawDevice();
  const second = new RawDevice();
  try {
    await first.open(c.nodes[2]!, token);
    await first.waitFrame((f) => f.type === 'caughtUp', 'caughtUp on node 3');
    const epoch = first.of('welcome')[0]!.epoch;
    const a = await devs.open(alice!, 'laptop', [0]);
    const seqs: number[] = [];
    const half = Math.floor(total / 2);
    for (let i = 0; i < half; i++) seqs.push((await a.client.send({ to: bob!, body: `m${i}`, id: `m-${i}` })).seq);
    await first.waitFrame((f) => f.type === 'message' && f.seq === seqs[half - 1], 'first half on node 3');
    // Ack part of what arrived, then drop the connection while alice keeps sending.
    const ackTo = seqs[Math.floor(half / 2)]!;
    first.send({ type: 'ack', upTo: ackTo });
    await first.waitFrame((f) => f.type === 'acked' && f.cursor >= ackTo, 'ack committed');
    const sending = (async () => {
      for (let i = half; i < total; i++) seqs.push((await a.client.send({ to: bob!, body: `m${i}`, id: `m-${i}` })).seq);
    })();
    await first.cut();
    await second.open(c.nodes[1]!, token, { epoch, lastSeq: seqs[half - 1]! });
    await sending;
    await second.waitFrame((f) => f.type === 'message' && f.seq === seqs[total - 1], 'the last message on node 2');

    const welcome = second.of('welcome')[0]!;
    assert.equal(welcome.epochChanged, false);
    assert.equal(welcome.cursor, ackTo, 'node 2 resumes after the cursor acked on node 3');
    const got1 = first.of('message').map((m) => m.seq);
    const got2 = second.of('message').map((m) => m.seq);
    for (const got of [got1, got2]) {
      for (let i = 1; i < got.length; i++) assert.ok(got[i]! > got[i - 1]!, 'each connection sends strictly increasing seqs');
    }
    assert.ok(
      got2.every((s) => s > ackTo),
      'nothing acked is sent again',
    );
    assert.deepEqual(
      [...new Set([...got1, ...got2])].sort((x, y) => x - y),
      seqs,
      'nothing is lost',
    );
    assert.deepEqual(
      got2,
      seqs.filter((s) => s > ackTo),
      'node 2 sends exactly what was not acked, once',
    );
  } finally {
    devs.closeAll();
    await first.cut().catch(() => undefined);
    await second.cut().catch(() => undefined);
  }
}

/**
 * The many-node run's delivery property (bench/many-node.ts measures it; this asserts it):
 * two devices each of bob and carol spread over the nodes, alice streaming to both users,
 * and every device moved to the next node mid-stream (it acks what it got, its socket is
 * cut, it says hello on the next node without a position, so it resumes after its cursor).
 * On every connection each seq arrives at most once and in increasing order; the second
 * connection sends exactly what was not acked on the first; every message reaches every
 * device of its recipient.
 */
export async function spreadAndMoved(c: Cluster, total = 40): Promise<void> {
  const [alice, bob, carol] = names('alice', 'bob', 'carol');
  const devs = new Devices(c);
  const n = c.nodes.length;
  const recipients = [bob!, carol!];
  const devices = await Promise.all(
    recipients.flatMap((user, u) =>
      ['phone', 'tablet'].map(async (device, d) => {
        const node = (u * 2 + d) % n;
        const token = await c.token(user, device);
        const first = new RawDevice();
        await first.open(c.nodes[node]!, token);
        await first.waitFrame((f) => f.type === 'caughtUp', `${user}/${device} caught up on node ${node + 1}`);
        return { user, device, node, token, first, second: new RawDevice(), ackTo: 0 };
      }),
    ),
  );
  try {
    const a = await devs.open(alice!, 'laptop', [0]);
    const seqs = new Map<string, number[]>(recipients.map((u) => [u, []]));
    const send = async (i: number): Promise<void> => {
      const to = recipients[i % 2]!;
      seqs.get(to)!.push((await a.client.send({ to, body: `m${i}`, id: `m-${i}` })).seq);
    };
    const half = Math.floor(total / 2);
    for (let i = 0; i < half; i++) await send(i);
    // Mid-stream: alice keeps sending while every device acks what it has and moves on.
    const sending = (async () => {
      for (let i = half; i < total; i++) await send(i);
    })();
    for (const d of devices) {
      await d.first.waitFrame((f) => f.type === 'message', `${d.user}/${d.device}: a first message`);
      d.ackTo = Math.max(...d.first.of('message').map((m) => m.seq));
      d.first.send({ type: 'ack', upTo: d.ackTo });
      await d.first.waitFrame((f) => f.type === 'acked' && f.cursor >= d.ackTo, `${d.user}/${d.device}: ack committed`);
      await d.first.cut();
      await d.second.open(c.nodes[(d.node + 1) % n]!, d.token);
    }
    await sending;
    for (const d of devices) {
      const last = seqs.get(d.user)!.at(-1)!;
      await d.second.waitFrame((f) => f.type === 'message' && f.seq === last, `${d.user}/${d.device}: the last message on node ${((d.node + 1) % n) + 1}`);
    }
    for (const d of devices) {
      const who = `${d.user}/${d.device}`;
      const got1 = d.first.of('message').map((m) => m.seq);
      const got2 = d.second.of('message').map((m) => m.seq);
      for (const got of [got1, got2]) {
        for (let i = 1; i < got.length; i++) assert.ok(got[i]! > got[i - 1]!, `${who}: each connection sends each seq once, in increasing order (${got[i - 1]} then ${got[i]})`);
      }
      const all = seqs.get(d.user)!;
      assert.deepEqual(
        got2,
        all.filter((s) => s > d.ackTo),
        `${who}: the second connection sends exactly what was not acked`,
      );
      assert.deepEqual(
        [...new Set([...got1, ...got2])].sort((x, y) => x - y),
        all,
        `${who}: nothing lost`,
      );
    }
  } finally {
    devs.closeAll();
    for (const d of devices) {
      await d.first.cut().catch(() => undefined);
      await d.second.cut().catch(() => undefined);
    }
  }
}

/**
 * bob and carol receive on node 1 while alice (also on node 1) streams to them; node 1
 * is killed mid-stream. Each client moves to its next URL; nothing is lost, nothing is
 * seen twice, and alice's unanswered send is written again on the new node and stored once.
 */
export async function nodeKilledWhileReceiving(c: Cluster, kill: (node: number) => Promise<void>, total = 80): Promise<void> {
  const [alice, bob, carol] = names('alice', 'bob', 'carol');
  const devs = new Devices(c);
  try {
    const b = await devs.open(bob!, 'phone', [0, 1, 2]);
    const k = await devs.open(carol!, 'tablet', [0, 2, 1]);
    await b.waitCaughtUp();
    await k.waitCaughtUp();
    const a = await devs.open(alice!, 'laptop', [0, 1, 2]);
    const toBob: string[] = [];
    const toCarol: string[] = [];
    for (let i = 0; i < total; i++) {
      const id = `m-${i}`;
      const to = i % 2 === 0 ? bob! : carol!;
      (to === bob ? toBob : toCarol).push(id);
      const r = await a.client.send({ to, body: `message ${i}`, id });
      assert.ok(r.seq > 0);
      if (i === Math.floor(total / 3)) {
        await b.waitMessages(5);
        await k.waitMessages(5);
        await kill(0);
      }
    }
    await b.waitMessages(toBob.length);
    await k.waitMessages(toCarol.length);
    assertExactlyOnce(b, toBob, 'bob');
    assertExactlyOnce(k, toCarol, 'carol');
    assert.deepEqual(b.nodes.slice(0, 2), [c.nodes[0], c.nodes[1]], 'bob moved to node 2');
    assert.deepEqual(k.nodes.slice(0, 2), [c.nodes[0], c.nodes[2]], 'carol moved to node 3');
    assert.equal(a.nodes[1], c.nodes[1], 'alice moved to node 2');
  } finally {
    devs.closeAll();
  }
}

export interface RedisControl {
  stop(): Promise<void>;
  start(): Promise<void>;
}

/**
 * Redis goes away: every node reports its bus unhealthy, sends still succeed and are
 * delivered (sessions poll the store), a device that connects meanwhile is served too.
 * Redis comes back: every node is healthy again (so sessions stopped polling) and
 * messages arrive by live wake-ups, including for the channel first subscribed while down.
 */
export async function redisOutage(c: Cluster, redis: RedisControl, ready: (node: number) => Promise<boolean>, nodeCount: number): Promise<void> {
  const [alice, bob, carol] = names('alice', 'bob', 'carol');
  const devs = new Devices(c);
  const allNodes = Array.from({ length: nodeCount }, (_, i) => i);
  const allReady = async (want: boolean): Promise<boolean> => (await Promise.all(allNodes.map(ready))).every((r) => r === want);
  try {
    await waitFor(() => allReady(true), 'every node ready before the outage', 15_000);
    const b = await devs.open(bob!, 'phone', [2]);
    await b.waitCaughtUp();
    const a = await devs.open(alice!, 'laptop', [0]);
    const toBob = ['before'];
    await a.client.send({ to: bob!, body: 'before the outage', id: 'before' });
    await b.waitMessages(1);

    let k: Device | undefined;
    await redis.stop();
    try {
      await waitFor(() => allReady(false), 'every node reporting its bus unhealthy', 15_000);
      for (let i = 0; i < 5; i++) {
        const id = `during-${i}`;
        toBob.push(id);
        const r = await a.client.send({ to: bob!, body: `sent while Redis is down ${i}`, id });
        assert.equal(r.duplicate, false);
      }
      k = await devs.open(carol!, 'tablet', [1]);
      await k.waitCaughtUp();
      await a.client.send({ to: carol!, body: 'to carol while Redis is down', id: 'c-during' });
      await b.waitMessages(toBob.length);
      await k.waitMessages(1);
    } finally {
      await redis.start();
    }

    await waitFor(() => allReady(true), 'every node healthy after Redis is back', 20_000);
    toBob.push('after');
    await a.client.send({ to: bob!, body: 'after the outage', id: 'after' });
    await b.waitMessages(toBob.length);
    assertExactlyOnce(b, toBob, 'bob');
    assert.ok(k);
    await a.client.send({ to: carol!, body: 'to carol after', id: 'c-after' });
    await k.waitMessages(2);
    assertExactlyOnce(k, ['c-during', 'c-after'], 'carol');
  } finally {
    devs.closeAll();
  }
}
