/**
 * pobox against the stores a team would reach for instead, on one mailbox workload:
 * N users, K messages each (sent in shuffled order), then random page fetches, then one
 * "delete up to a seq" (the ack of the first page) per user. Every peer gets the same
 * client concurrency, the same bodies and the same order; every send is durable in the
 * peer's own terms (stated next to its numbers); the answers are checked.
 *
 *   npm run bench:peers [-- --quick] [--users 2500] [--per-user 20] [--concurrency 32] [--fetches 10000] [--only pobox,pobox-gateway,redis,postgres,nats]
 */
import path from 'node:path';
import { benchArgs, numberFlag } from './lib/args.js';
import { fdatasyncLatency } from './lib/disk-probe.js';
import { writeBarChart, type BarPoint } from './lib/plot.js';
import { checkInterrupted, runMain } from './lib/cleanup.js';
import { log, progress } from './lib/progress.js';
import { benchMachine, resultsDir, writeResult } from './lib/results.js';
import { Latency, round, runConcurrent, shuffle, type LatencySummary } from './lib/stats.js';
import { seeded } from '../tools/random.js';
import { natsFsyncProbe } from './peers/nats-fsync-probe.js';
import { openNatsPeer } from './peers/nats.js';
import type { Peer } from './peers/peer.js';
import { openPoboxPeer } from './peers/pobox.js';
import { openPoboxGatewayPeer } from './peers/pobox-gateway.js';
import { VS_REDIS_TARGETS } from './peers/targets.js';
import { openPostgresPeer } from './peers/postgres.js';
import { openRedisPeer } from './peers/redis.js';

export interface OpResult extends LatencySummary {
  ops: number;
  /** Operations per second over the phase's wall time. */
  throughput: number;
}

export interface PeerResult {
  name: string;
  version?: string;
  durability?: string;
  notes?: string[];
  ops?: { send: OpResult; fetch: OpResult; delete: OpResult };
  /** Why this peer has no numbers. */
  error?: string;
}

export interface PeersData {
  users: number;
  perUser: number;
  page: number;
  fetches: number;
  concurrency: number;
  bodyBytes: number;
  peers: PeerResult[];
  natsFsync?: string;
  plot?: string;
  /** This disk's small-write durability cost, which bounds every durable send. */
  diskFdatasyncMs?: { p50: number; p99: number };
  /** Each pobox row's throughput as a multiple of Redis AOF-always, beside issue 9's targets. */
  vsRedis?: VsRedis[];
}

export interface VsRedis {
  pobox: string;
  send: number;
  fetch: number;
  delete: number;
}

function vsRedis(results: PeerResult[]): VsRedis[] {
  const redis = results.find((r) => r.name.startsWith('Redis'))?.ops;
  if (!redis) return [];
  return results
    .filter((r) => r.name.startsWith('pobox') && r.ops)
    .map((r) => ({
      pobox: r.name,
      send: round(r.ops!.send.throughput / redis.send.throughput),
      fetch: round(r.ops!.fetch.throughput / redis.fetch.throughput),
      delete: round(r.ops!.delete.throughput / redis.delete.throughput),
    }));
}

const BODY_LEN = 100;

runMain(async () => {
  const args = benchArgs({ users: { type: 'string' }, 'per-user': { type: 'string' }, concurrency: { type: 'string' }, fetches: { type: 'string' }, only: { type: 'string' } });
  const quick = args.quick;
  const users = numberFlag(args, 'users', quick ? 200 : 2500);
  const perUser = numberFlag(args, 'per-user', 20);
  const concurrency = numberFlag(args, 'concurrency', 32);
  const page = perUser / 2;
  const fetches = numberFlag(args, 'fetches', quick ? 1000 : 10_000);
  const startedAt = new Date().toISOString();
  const notes: string[] = [];
  const only = typeof args.values.only === 'string' ? args.values.only.split(',') : undefined;

  const disk = await fdatasyncLatency();
  log(`peers: this disk's 4 KiB append + fdatasync: p50 ${disk.p50} ms, p99 ${disk.p99} ms`);
  log('peers: probing the NATS server for fsync behaviour...');
  const probe = await natsFsyncProbe().catch((err: Error) => ({ publishes: 0, fsyncCalls: null, summary: `fsync behaviour not measured (${err.message})` }));
  const natsDurability = `PubAck after the server wrote the message to its file store; ${probe.summary}`;

  const openers: Array<[string, () => Promise<Peer>]> = [
    ['pobox', openPoboxPeer],
    ['pobox-gateway', () => openPoboxGatewayPeer(concurrency)],
    ['redis', openRedisPeer],
    ['postgres', () => openPostgresPeer(concurrency)],
    ['nats', () => openNatsPeer(natsDurability)],
  ];
  const userIds = Array.from({ length: users }, (_, i) => `user-${i}`);
  const order = new Uint32Array(users * perUser);
  for (let i = 0; i < order.length; i++) order[i] = Math.floor(i / perUser);
  shuffle(order, seeded(7));

  const results: PeerResult[] = [];
  for (const [key, open] of openers) {
    if (only && !only.includes(key)) continue;
    let peer: Peer | undefined;
    checkInterrupted();
    try {
      peer = await open();
      results.push(await runWorkload(peer, { userIds, order, perUser, page, fetches, concurrency }));
    } catch (err) {
      checkInterrupted();
      const msg = (err as Error).message.split('\n')[0]!;
      log(`peers: ${key} could not run: ${msg}`);
      results.push({ name: peer?.name ?? key, error: msg });
    } finally {
      await peer?.close().catch((err: Error) => log(`peers: closing ${key} failed: ${err.message}`));
    }
  }

  const pobox = results.find((r) => r.name.startsWith('pobox'))?.ops;
  log('');
  log(`${'peer'.padEnd(36)} ${'op'.padEnd(7)} ${'ops/s'.padStart(9)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)}  x pobox (throughput)`);
  for (const r of results) {
    if (!r.ops) {
      log(`${r.name.padEnd(36)} could not run: ${r.error}`);
      continue;
    }
    for (const op of ['send', 'fetch', 'delete'] as const) {
      const o = r.ops[op];
      const ratio = pobox ? round(o.throughput / pobox[op].throughput) : NaN;
      log(`${r.name.padEnd(36)} ${op.padEnd(7)} ${String(o.throughput).padStart(9)} ${String(o.p50).padStart(8)} ${String(o.p99).padStart(8)}  ${ratio}`);
    }
  }

  const ratios = vsRedis(results);
  for (const v of ratios) {
    const say = (op: keyof typeof VS_REDIS_TARGETS): string => `${op} ${v[op]}x (target >= ${VS_REDIS_TARGETS[op]}x: ${v[op] >= VS_REDIS_TARGETS[op] ? 'met' : 'not met'})`;
    log(`${v.pobox} vs Redis AOF-always: ${say('send')}, ${say('fetch')}, ${say('delete')}`);
  }

  const plot = 'peers-throughput.svg';
  const bars: BarPoint[] = results.flatMap((r) =>
    r.ops ? (['send', 'fetch', 'delete'] as const).map((op) => ({ group: r.name, facet: `${op} (ops/s)`, value: r.ops![op].throughput })) : [],
  );
  const dir = resultsDir(quick);
  if (bars.length > 0)
    await writeBarChart(path.join(dir, plot), bars, { title: `Throughput from ${concurrency} concurrent clients (higher is better)`, yTitle: 'operations per second' });

  const peerVersions = Object.fromEntries(results.filter((r) => r.version).map((r) => [r.name, r.version!]));
  const file = writeResult<PeersData>(dir, {
    name: 'peers',
    quick,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: benchMachine(['lmdb', 'ioredis', 'pg', 'nats'], peerVersions),
    params: { users, perUser, page, fetches, concurrency, bodyBytes: BODY_LEN, only: only ?? 'all' },
    notes,
    data: {
      users,
      perUser,
      page,
      fetches,
      concurrency,
      bodyBytes: BODY_LEN,
      peers: results,
      natsFsync: probe.summary,
      plot,
      diskFdatasyncMs: { p50: disk.p50, p99: disk.p99 },
      vsRedis: ratios,
    },
  });
  log(`wrote ${file}`);
});

interface Workload {
  userIds: string[];
  order: Uint32Array;
  perUser: number;
  page: number;
  fetches: number;
  concurrency: number;
}

async function runWorkload(peer: Peer, w: Workload): Promise<PeerResult> {
  const { userIds, order, perUser, page, concurrency } = w;
  await peer.setup([...userIds, ...Array.from({ length: 10 }, (_, i) => `warm-${i}`)]);
  // Warm connections, prepared statements, scripts and the JIT on users outside the measured set.
  for (let i = 0; i < 100; i++) await peer.send(`warm-${i % 10}`, `warm-${i}`, body('warm', i));
  for (let i = 0; i < 20; i++) await peer.fetch(`warm-${i % 10}`, 0, page);

  const seqs = userIds.map(() => [] as number[]);
  const nextK = new Uint16Array(userIds.length);
  const bar = progress(`peers: ${peer.name.slice(0, 26)}`, order.length + w.fetches + userIds.length);

  const sendLat = new Latency();
  const sendMs = await runConcurrent(order.length, concurrency, async (i) => {
    const u = order[i]!;
    const k = nextK[u]!++;
    const seq = await sendLat.time(() => peer.send(userIds[u]!, `m-${u}-${k}`, body(userIds[u]!, k)));
    seqs[u]!.push(seq);
    bar.tick();
  });
  for (const s of seqs) s.sort((a, b) => a - b);

  const random = seeded(11);
  const fetchUsers = Array.from({ length: w.fetches }, () => Math.floor(random() * userIds.length));
  const fetchLat = new Latency();
  const fetchMs = await runConcurrent(w.fetches, concurrency, async (i) => {
    const u = fetchUsers[i]!;
    const got = await fetchLat.time(() => peer.fetch(userIds[u]!, 0, page));
    if (got.length !== page || got[0]!.seq !== seqs[u]![0])
      throw new Error(`${peer.name}: fetch of ${userIds[u]} returned ${got.length} messages starting at ${got[0]?.seq}, expected ${page} from ${seqs[u]![0]}`);
    bar.tick();
  });

  const delLat = new Latency();
  const delMs = await runConcurrent(userIds.length, concurrency, async (u) => {
    await delLat.time(() => peer.deleteUpTo(userIds[u]!, seqs[u]![page - 1]!));
    bar.tick();
  });
  bar.stop();

  // Nothing lost, nothing left behind: the next page starts right after the deleted ones.
  for (let u = 0; u < Math.min(50, userIds.length); u++) {
    const rest = await peer.fetch(userIds[u]!, 0, perUser);
    const want = seqs[u]!.slice(page);
    if (rest.map((m) => m.seq).join() !== want.join())
      throw new Error(`${peer.name}: after the delete ${userIds[u]} has seqs ${rest.map((m) => m.seq).join()} instead of ${want.join()}`);
  }

  const op = (lat: Latency, ops: number, ms: number): OpResult => ({ ops, throughput: Math.round(ops / (ms / 1000)), ...lat.summary() });
  const ops = { send: op(sendLat, order.length, sendMs), fetch: op(fetchLat, w.fetches, fetchMs), delete: op(delLat, userIds.length, delMs) };
  log(
    `  ${peer.name}: send ${ops.send.throughput}/s p50 ${ops.send.p50} ms; fetch ${ops.fetch.throughput}/s p50 ${ops.fetch.p50} ms; delete ${ops.delete.throughput}/s p50 ${ops.delete.p50} ms`,
  );
  return { name: peer.name, version: peer.version, durability: peer.durability, notes: peer.notes, ops };
}

function body(user: string, k: number): string {
  const head = `message ${k} for ${user}: `;
  return head + 'x'.repeat(Math.max(0, BODY_LEN - head.length));
}
