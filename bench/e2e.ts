/**
 * End to end through the gateway, server and load generators in separate processes:
 *
 *  1. reconnect storm: D devices with 10 pending messages each all reconnect within one
 *     second; time until every message is delivered and its ack is durable, and a check
 *     that nothing was lost or left (the server's stores are counted afterwards);
 *  2. idle capacity: hold as many idle WebSocket connections as the machine allows (up
 *     to 100,000), one 127.x.y.z source address each, and measure the server's memory
 *     per connection;
 *  3. drain and live latency, read from the gateway benchmark's results when present.
 *
 *   npm run bench:e2e [-- --quick] [--devices 10000] [--idle-max 100000] [--only storm|idle] [--cpu-prof DIR] [--store-worker]
 *
 * --cpu-prof DIR: the server process writes a V8 CPU profile into DIR when it exits
 * (summarise it with `node --import tsx bench/lib/cpu-profile.ts FILE`).
 * --store-worker: the server runs its store engine in a worker thread (storeWorker).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { benchArgs, numberFlag } from './lib/args.js';
import { checkInterrupted, runMain } from './lib/cleanup.js';
import { log, progress } from './lib/progress.js';
import { benchMachine, readJson, resultsDir, writeResult } from './lib/results.js';
import { diffCounters, tcpCounters } from './lib/netstat.js';
import { percentile } from './lib/stats.js';
import { forkChild, type Child } from './e2e/children.js';
import type { IdleReply, ServerReply, StormDevice, StormReply } from './e2e/ipc.js';

export interface StormResult {
  devices: number;
  perDevice: number;
  spreadMs: number;
  prefillMs: number;
  /** From the first scheduled connect to the last durable ack. */
  totalMs: number;
  completed: number;
  messagesExpected: number;
  messagesDelivered: number;
  lost: number;
  duplicates: number;
  retries: number;
  errors: Record<string, number>;
  /** ms from each device's own connect: p50 / p99 / max. */
  open: Pct;
  caughtUp: Pct;
  acked: Pct;
  /** Left on the server afterwards: devices whose cursor is behind, and stored messages. */
  serverPendingDevices: number;
  serverMessagesLeft: number;
  serverRssMiB: number;
  serverCores: number;
  loadGeneratorCores: number;
  machineCores: number;
  /** Share of the storm's time the server's event loop (its one JavaScript thread) was busy. */
  serverEventLoopBusy: number;
  /** The same in the busiest one-second window of the storm. */
  serverEventLoopPeak1s: number;
  /** Kernel TCP counters during the storm (machine-wide): listen-queue overflows, SYN retransmissions. */
  tcp?: Record<string, number>;
  /** The server socket's accept-queue length (ss Send-Q of the listener). */
  listenBacklog?: number;
  /** The kernel's cap on any accept queue (net.core.somaxconn): the gateway asks for more, and gets this. */
  somaxconn?: number;
}

interface Pct {
  p50: number;
  p99: number;
  max: number;
}

export interface IdleStep {
  connections: number;
  rssMiB: number;
  heapUsedMiB: number;
}

export interface IdleResult {
  target: number;
  reached: number;
  steps: IdleStep[];
  baselineRssMiB: number;
  /** Server RSS growth per connection, from the baseline to the largest step. */
  rssKiBPerConnection: number;
  heapKiBPerConnection: number;
  serverNofile: number;
  clientNofile: number;
  limitedBy: string;
}

export interface E2eData {
  storm?: StormResult;
  idle?: IdleResult;
  gateway?: { drain: Array<{ pending: number; medianMs: number }>; live?: { p50: number; p99: number; ratePerSec: number } };
  errors: string[];
}

const MiB = 1024 * 1024;

/** Where the server writes its CPU profile (--cpu-prof DIR), if asked. */
let serverProfileDir: string | undefined;
/** --store-worker: the server's store engine runs in a worker thread. */
let storeWorker = false;

runMain(async () => {
  const args = benchArgs({
    devices: { type: 'string' },
    'idle-max': { type: 'string' },
    only: { type: 'string' },
    'cpu-prof': { type: 'string' },
    'store-worker': { type: 'boolean' },
  });
  if (typeof args.values['cpu-prof'] === 'string') serverProfileDir = args.values['cpu-prof'];
  storeWorker = args.values['store-worker'] === true;
  const quick = args.quick;
  const devices = numberFlag(args, 'devices', quick ? 500 : 10_000);
  const idleMax = numberFlag(args, 'idle-max', quick ? 1_000 : 100_000);
  const only = typeof args.values.only === 'string' ? args.values.only : undefined;
  const startedAt = new Date().toISOString();
  const notes: string[] = [];
  const data: E2eData = { errors: [] };

  if (!only || only === 'storm') {
    try {
      data.storm = await stormBench(devices, 10, 1000);
    } catch (err) {
      checkInterrupted();
      data.errors.push(`reconnect storm failed: ${(err as Error).message}`);
      log(`e2e: storm failed: ${(err as Error).stack}`);
    }
  }
  if (!only || only === 'idle') {
    try {
      checkInterrupted();
      data.idle = await idleBench(idleMax, quick);
    } catch (err) {
      checkInterrupted();
      data.errors.push(`idle capacity failed: ${(err as Error).message}`);
      log(`e2e: idle failed: ${(err as Error).stack}`);
    }
  }
  const dir = resultsDir(quick);
  const gw = readJson(dir, 'gateway') as GatewayJson | undefined;
  if (gw?.data) {
    data.gateway = {
      drain: (gw.data.drain ?? []).map((d) => ({ pending: d.pending, medianMs: d.protocolMs?.median ?? NaN })),
      ...(gw.data.live?.sendToReceive ? { live: { p50: gw.data.live.sendToReceive.p50, p99: gw.data.live.sendToReceive.p99, ratePerSec: gw.data.live.ratePerSec ?? NaN } } : {}),
    };
  } else {
    notes.push('Drain and live latency: bench/results/gateway.json was not there when this ran (run `npm run bench:gateway`).');
  }
  if (data.storm) notes.push(...stormNotes(data.storm));
  if (data.idle) notes.push(`Idle connections: ${data.idle.reached} of ${data.idle.target} held; limited by ${data.idle.limitedBy}.`);

  const file = writeResult<E2eData>(dir, {
    name: 'e2e',
    quick,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: benchMachine(['ws', 'lmdb', 'jose']),
    params: { devices, perDevice: 10, spreadMs: 1000, idleMax, storeWorker },
    notes,
    data,
  });
  log(`wrote ${file}`);
  if (data.errors.length > 0) throw new Error(data.errors.join('; '));
});

interface GatewayJson {
  data?: {
    drain?: Array<{ pending: number; protocolMs?: { median: number } }>;
    live?: { ratePerSec?: number; sendToReceive?: { p50: number; p99: number } };
  };
}

function startServerChild(secret: string): Child {
  const prof = serverProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${serverProfileDir}`] : [];
  return forkChild('server-child.ts', { BENCH_SECRET: secret, ...(storeWorker ? { BENCH_STORE_WORKER: '1' } : {}) }, ['--expose-gc', ...prof]);
}

async function stormBench(devices: number, perDevice: number, spreadMs: number): Promise<StormResult> {
  const secret = randomBytes(32).toString('hex');
  const server = startServerChild(secret);
  try {
    const ready = await server.next<Extract<ServerReply, { type: 'ready' }>>(['ready'], 60_000);
    const wsUrl = `ws://127.0.0.1:${ready.port}/ws`;
    const backlog = listenBacklog(ready.port);
    const prefix = 'storm-';
    log(`e2e storm: prefilling ${devices} mailboxes x ${perDevice} messages...`);
    const pre = await server.ask<Extract<ServerReply, { type: 'prefilled' }>>({ cmd: 'prefill', users: devices, perUser: perDevice, prefix }, ['prefilled']);
    // Two load generators, so client-side JSON and TLS-free WebSocket work uses both cores' spare time.
    const gens = devices >= 2000 ? 2 : 1;
    const share = Math.ceil(devices / gens);
    const clients: Child[] = [];
    for (let g = 0; g < gens; g++) clients.push(forkChild('storm-client.ts', {}));
    await Promise.all(
      clients.map((c, g) =>
        c.ask(
          {
            wsUrl,
            secret,
            prefix,
            first: g * share,
            count: Math.min(share, devices - g * share),
            perUser: perDevice,
            spreadMs,
            startAt: 0,
            timeoutMs: 120_000,
            addressOctet: 10 + g * 20,
          },
          ['armed'],
        ),
      ),
    );
    const before = await server.ask<Extract<ServerReply, { type: 'memory' }>>({ cmd: 'memory' }, ['memory']);
    const tcpBefore = tcpCounters();
    const startAt = Date.now() + 500;
    log(`e2e storm: ${devices} devices reconnect within ${spreadMs} ms...`);
    const bar = progress('e2e: reconnect storm', 1);
    const done = await Promise.all(clients.map((c) => c.ask<Extract<StormReply, { type: 'storm-done' }>>({ cmd: 'go', startAt }, ['storm-done'], 300_000)));
    bar.tick();
    bar.stop();
    const all: StormDevice[] = done.flatMap((d) => d.devices);
    const errors: Record<string, number> = {};
    for (const d of done) for (const [k, v] of Object.entries(d.errors)) errors[k] = (errors[k] ?? 0) + v;
    const lastAck = Math.max(...done.map((d) => d.lastAckAt));
    const tcp = diffCounters(tcpBefore, tcpCounters());
    for (const c of clients) await c.stop();
    const mem = await server.ask<Extract<ServerReply, { type: 'memory' }>>({ cmd: 'memory' }, ['memory']);
    const wallS = (lastAck - startAt) / 1000;
    const left = await server.ask<Extract<ServerReply, { type: 'pending' }>>({ cmd: 'pending', users: devices, prefix }, ['pending']);
    const completed = all.filter((d) => d.done);
    const cap = somaxconn();
    const pct = (xs: number[]): Pct => {
      const s = xs.filter((x) => x >= 0).sort((a, b) => a - b);
      return { p50: Math.round(percentile(s, 50)), p99: Math.round(percentile(s, 99)), max: Math.round(s.at(-1) ?? NaN) };
    };
    const result: StormResult = {
      devices,
      perDevice,
      spreadMs,
      prefillMs: Math.round(pre.ms),
      totalMs: completed.length > 0 ? lastAck - startAt : NaN,
      completed: completed.length,
      messagesExpected: devices * perDevice,
      messagesDelivered: all.reduce((n, d) => n + d.unique, 0),
      lost: all.reduce((n, d) => n + (perDevice - d.unique), 0),
      duplicates: all.reduce((n, d) => n + d.duplicates, 0),
      retries: all.reduce((n, d) => n + d.retries, 0),
      errors,
      open: pct(all.map((d) => d.open)),
      caughtUp: pct(all.map((d) => d.caughtUp)),
      acked: pct(all.map((d) => d.acked)),
      serverPendingDevices: left.pending,
      serverMessagesLeft: left.messagesLeft,
      serverRssMiB: Math.round(mem.rss / MiB),
      // Cores busy on average while the storm ran: near the machine's core count means CPU-bound.
      serverCores: Math.round(((mem.cpuMs - before.cpuMs) / 1000 / wallS) * 100) / 100,
      loadGeneratorCores: Math.round((done.reduce((n, d) => n + d.cpuMs, 0) / 1000 / wallS) * 100) / 100,
      machineCores: os.cpus().length,
      serverEventLoopBusy: Math.round(((mem.eluActive - before.eluActive) / (mem.eluActive - before.eluActive + mem.eluIdle - before.eluIdle)) * 100) / 100,
      serverEventLoopPeak1s: Math.round(mem.eluPeak1s * 100) / 100,
      ...(tcp ? { tcp } : {}),
      ...(backlog !== undefined ? { listenBacklog: backlog } : {}),
      ...(cap !== undefined ? { somaxconn: cap } : {}),
    };
    log(
      `e2e storm: ${result.completed}/${devices} devices done in ${result.totalMs} ms; delivered ${result.messagesDelivered}/${result.messagesExpected}, ` +
        `lost ${result.lost}, duplicates ${result.duplicates}, retries ${result.retries}; per device acked p50 ${result.acked.p50} ms p99 ${result.acked.p99} ms; left on server ${result.serverMessagesLeft}`,
    );
    return result;
  } finally {
    await server.stop();
  }
}

function stormNotes(s: StormResult): string[] {
  const out = [
    `Reconnect storm: ${s.devices} devices x ${s.perDevice} messages, connects spread over ${s.spreadMs} ms, one server process and ${s.devices >= 2000 ? 2 : 1} load-generator process(es) sharing the machine's cores; every device is a raw ws client that acks after caughtUp and waits for the durable 'acked'.`,
  ];
  if (s.lost > 0 || s.serverMessagesLeft > 0)
    out.push(`Storm: ${s.lost} messages not delivered, ${s.serverMessagesLeft} left on the server (see errors: ${JSON.stringify(s.errors)}).`);
  if (s.retries > 0) out.push(`Storm: ${s.retries} reconnects after a failed connection (${JSON.stringify(s.errors)}).`);
  out.push(
    `Storm CPU: the server process averaged ${s.serverCores} cores (its event loop busy ${Math.round(s.serverEventLoopBusy * 100)}% of the storm, ${Math.round(s.serverEventLoopPeak1s * 100)}% in its busiest second) and the load generators ${s.loadGeneratorCores} cores, of the machine's ${s.machineCores}.`,
  );
  const overflows = s.tcp?.ListenOverflows ?? 0;
  if (overflows > 0) {
    out.push(
      `Storm: the server's listen queue overflowed ${overflows} times and the kernel retransmitted ${s.tcp?.TCPSynRetrans ?? 0} SYNs (SYN cookies sent: ${s.tcp?.SyncookiesSent ?? 0}). ` +
        "Connections that arrive while the queue is full wait in TCP's retransmission backoff (1 s, then 3 s, 7 s, 15 s ...), which is what stretches the tail: " +
        `the time from connect to the socket opening is p50 ${s.open.p50} ms and p99 ${s.open.p99} ms, while opening to the durable ack takes about ${Math.max(0, s.acked.p50 - s.open.p50)} ms (p50). ` +
        `The gateway's listen backlog is ${s.listenBacklog ?? 'unknown'}${s.listenBacklog === 511 ? " (Node's default)" : ''}${s.somaxconn !== undefined && s.listenBacklog === s.somaxconn ? " (the kernel's cap, net.core.somaxconn: the gateway asks for 65,535)" : ''}; ${s.devices.toLocaleString('en')} connects in one second arrive faster than one event loop accepts them and sets up their sessions (busiest second: ${Math.round(s.serverEventLoopPeak1s * 100)}% busy).`,
    );
  }
  return out;
}

async function idleBench(maxConnections: number, quick: boolean): Promise<IdleResult> {
  const secret = randomBytes(32).toString('hex');
  const server = startServerChild(secret);
  try {
    const ready = await server.next<Extract<ServerReply, { type: 'ready' }>>(['ready'], 60_000);
    const wsUrl = `ws://127.0.0.1:${ready.port}/ws`;
    const gens = quick ? 1 : 2;
    const clients: Child[] = [];
    for (let g = 0; g < gens; g++) clients.push(forkChild('idle-client.ts', {}));
    const readies = await Promise.all(
      clients.map((c, g) => c.ask<Extract<IdleReply, { type: 'ready' }>>({ wsUrl, secret, prefix: `idle${g}-`, first: 0, addressOctet: 100 + g * 40, inFlight: 64 }, ['ready'])),
    );
    const clientNofile = Math.min(...readies.map((r) => r.nofile));
    // Each connection is one fd in the server; leave room for lmdb, stdio and listeners.
    const fdCap = Math.min(ready.nofile - 100, gens * (clientNofile - 100));
    const target = Math.min(maxConnections, fdCap);
    let limitedBy =
      target < maxConnections
        ? `the open-files limit: ${ready.nofile} per process (ulimit -n; the hard limit here, which this container does not let even root raise), and each connection is one file descriptor in the server`
        : `the requested maximum (${maxConnections})`;
    const base = await server.ask<Extract<ServerReply, { type: 'memory' }>>({ cmd: 'memory' }, ['memory']);
    const steps: IdleStep[] = [];
    const ladder = (quick ? [250, 500, 1000] : [1000, 5000, 10_000, 15_000, 20_000, 50_000, 100_000]).filter((n) => n < target);
    ladder.push(target);
    const bar = progress('e2e: idle connections', target);
    let reached = 0;
    for (const step of ladder) {
      const per = Math.ceil(step / gens);
      const opened = await Promise.all(clients.map((c) => c.ask<Extract<IdleReply, { type: 'opened' }>>({ cmd: 'open-to', count: per }, ['opened'], 900_000)));
      const open = opened.reduce((n, o) => n + o.open, 0);
      bar.tick(open - reached);
      reached = open;
      const mem = await server.ask<Extract<ServerReply, { type: 'memory' }>>({ cmd: 'memory' }, ['memory']);
      steps.push({ connections: mem.sessions, rssMiB: round1(mem.rss / MiB), heapUsedMiB: round1(mem.heapUsed / MiB) });
      const failed = opened.find((o) => o.firstError);
      if (failed) {
        limitedBy = `connection failures at ${open} connections: ${failed.firstError} (${JSON.stringify(opened.map((o) => o.errors))})`;
        break;
      }
    }
    bar.stop();
    const last = steps.at(-1)!;
    const result: IdleResult = {
      target,
      reached: last.connections,
      steps,
      baselineRssMiB: round1(base.rss / MiB),
      rssKiBPerConnection: round1(((last.rssMiB - base.rss / MiB) * 1024) / Math.max(1, last.connections)),
      heapKiBPerConnection: round1(((last.heapUsedMiB - base.heapUsed / MiB) * 1024) / Math.max(1, last.connections)),
      serverNofile: ready.nofile,
      clientNofile,
      limitedBy,
    };
    log(`e2e idle: ${result.reached} idle connections held; server RSS ${last.rssMiB} MiB (+${result.rssKiBPerConnection} KiB per connection); limited by ${limitedBy}`);
    for (const c of clients) await c.stop();
    return result;
  } finally {
    await server.stop();
  }
}

/** net.core.somaxconn, the cap Linux puts on every listen backlog (undefined elsewhere). */
function somaxconn(): number | undefined {
  try {
    const n = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** The accept-queue length of the listener on `port` (what `ss -ltn` shows as Send-Q). */
function listenBacklog(port: number): number | undefined {
  try {
    const out = execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' });
    const cols = out.trim().split(/\s+/);
    const n = Number(cols[2]);
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
