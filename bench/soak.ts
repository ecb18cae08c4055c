/**
 * The soak: `npm run soak -- --minutes 30` holds a steady mixed load through the gateway of
 * a `pobox serve` child process and samples it every 10 s:
 *
 * - load: WebSocket devices that send, receive, ack; reconnects (the next connection
 *   drains what was not acked); slow readers (a device stops reading its socket); device
 *   churn (short-lived devices registered, pulled, acked and removed over HTTP); HTTP sends;
 * - samples (from the server's /metrics, prom-client default metrics, and /proc): RSS,
 *   heap, event-loop delay, active handles, open fds, connections, pending messages, and
 *   the clients' unanswered sends;
 * - at the end the load stops, everything is drained, and the books are checked: every
 *   accepted message reached every stable device of its recipient (zero lost) and no
 *   device got a seq twice on one connection (zero duplicated).
 *
 * The results page states the RSS and heap slope after warm-up (bench/lib/soak-report.ts).
 * Loopback only; the load is fixed and small (the machine has 2 cores).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { benchArgs, numberFlag } from './lib/args.js';
import { runMain } from './lib/cleanup.js';
import { fdatasyncLatency } from './lib/disk-probe.js';
import { promValues } from './lib/proc.js';
import { log } from './lib/progress.js';
import { benchMachine, resultsDir, writeResult } from './lib/results.js';
import { startServeProcess, type ServeProcess } from './lib/serve-process.js';
import { SoakDevice, type SoakBooks } from './lib/soak-device.js';
import { trend, writeSoakReport, type SoakData, type SoakSample } from './lib/soak-report.js';
import { mintToken } from '../src/gateway/auth.js';

const args = benchArgs({ minutes: { type: 'string' }, users: { type: 'string' }, rate: { type: 'string' } });
const MINUTES = numberFlag(args, 'minutes', args.quick ? 2 : 30);
const USERS = numberFlag(args, 'users', 20);
const DEVICES_PER_USER = 2;
/** WebSocket sends per second across all devices. */
const RATE = numberFlag(args, 'rate', 20);
const SAMPLE_EVERY_MS = 10_000;
const RECONNECT_EVERY_S = 5;
const SLOW_EVERY_S = 20;
const CHURN_EVERY_S = 10;
/** Samples before this are warm-up (JIT, lmdb maps, first registrations): left out of the trend. */
const WARMUP_S = Math.min(300, Math.round(MINUTES * 60 * 0.2));
const DRAIN_DEADLINE_MS = 180_000;

const secret = `soak-secret-${Math.random().toString(36).slice(2)}-0123456789abcdef`;
const sendKey = `soak-send-key-${Math.random().toString(36).slice(2)}-01234567`;
const adminKey = `soak-admin-key-${Math.random().toString(36).slice(2)}-0123456`;

async function http(server: ServeProcess, method: string, path: string, key: string, body?: unknown): Promise<{ status: number; json: unknown; text: string }> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

async function main(): Promise<void> {
  const diskProbe = await fdatasyncLatency();
  const server = await startServeProcess({
    secret,
    apiKeys: [
      { key: sendKey, name: 'soak-backend', scopes: ['send'] },
      { key: adminKey, name: 'soak-admin', scopes: ['admin'] },
    ],
    logLevel: 'warn',
  });
  log(`pobox serve pid ${server.pid} at ${server.url}; soak ${MINUTES} min, ${USERS} users x ${DEVICES_PER_USER} devices, ${RATE} sends/s`);
  const startedAt = new Date().toISOString();

  const books: SoakBooks = { accepted: new Map(), sent: 0, acceptedCount: 0, duplicateAccepts: 0, errors: {} };
  const users = Array.from({ length: USERS }, (_, i) => `soak-u${i}`);
  const devices: SoakDevice[] = [];
  for (const user of users) {
    for (let d = 0; d < DEVICES_PER_USER; d++) {
      const device = `d${d}`;
      devices.push(new SoakDevice(user, device, server.wsUrl, () => mintToken({ secret, user, device, ttlSeconds: 24 * 3600 }), books));
    }
  }
  // Every stable device is registered before the first send, so each must see every message to its user.
  for (const d of devices) await d.connect();
  await Promise.all(devices.map((d) => d.welcomed));
  log(`${devices.length} devices connected`);

  const totals = { httpSends: 0, reconnects: 0, slowReaderPauses: 0, churnedDevices: 0, httpPulls: 0 };
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
  const otherUser = (u: string): string => {
    for (;;) {
      const v = pick(users);
      if (v !== u) return v;
    }
  };
  const timers: NodeJS.Timeout[] = [];
  const every = (ms: number, fn: () => void): void => void timers.push(setInterval(fn, ms));

  // Sends: RATE per second, spread over 10 ticks, from random devices with fewer than 50 unanswered.
  let carry = 0;
  every(100, () => {
    carry += RATE / 10;
    for (; carry >= 1; carry--) {
      const d = pick(devices);
      if (d.pendingSends < 50) d.send(otherUser(d.user));
    }
  });
  let httpNo = 0;
  let httpBusy = false;
  every(1000, () => {
    if (httpBusy) return;
    httpBusy = true;
    const to = pick(users);
    const id = `backend.${httpNo++}`;
    // The books count it only once it is accepted; a failed attempt is retried with the same id.
    (async () => {
      for (let attempt = 0; attempt < 5; attempt++) {
        books.sent++;
        const r = await http(server, 'POST', '/v1/messages', sendKey, { from: 'backend', to, id, body: `soak ${id}` }).catch((err: Error) => ({
          status: 0,
          json: undefined,
          text: err.message,
        }));
        if (r.status === 201 || r.status === 200) {
          const seq = (r.json as { seq: number }).seq;
          let seqs = books.accepted.get(to);
          if (!seqs) books.accepted.set(to, (seqs = new Set()));
          seqs.add(seq);
          books.acceptedCount++;
          totals.httpSends++;
          return;
        }
        books.errors[`http send ${r.status}`] = (books.errors[`http send ${r.status}`] ?? 0) + 1;
        await sleep(500);
      }
    })()
      // http() failures are caught per attempt above; anything else is a bug in the books, counted as such.
      .catch((err: unknown) => (books.errors[`http sender: ${String(err)}`] = (books.errors[`http sender: ${String(err)}`] ?? 0) + 1))
      .finally(() => (httpBusy = false));
  });
  every(RECONNECT_EVERY_S * 1000, () => {
    totals.reconnects++;
    pick(devices).reconnect();
  });
  every(SLOW_EVERY_S * 1000, () => {
    totals.slowReaderPauses++;
    pick(devices).slowDown(5000 + Math.random() * 10_000);
  });
  let churnNo = 0;
  let churnBusy = false;
  every(CHURN_EVERY_S * 1000, () => {
    if (churnBusy) return;
    churnBusy = true;
    void churn(server, pick(users), `eph${churnNo++}`, totals)
      .catch((err: Error) => (books.errors[`churn: ${err.message.slice(0, 60)}`] = (books.errors[`churn: ${err.message.slice(0, 60)}`] ?? 0) + 1))
      .finally(() => (churnBusy = false));
  });

  // Samples.
  const samples: SoakSample[] = [];
  const t0 = Date.now();
  const sample = async (): Promise<void> => {
    const r = await http(server, 'GET', '/metrics', adminKey).catch(() => undefined);
    const m = r ? promValues(r.text) : new Map<string, number>();
    const os = server.osStats();
    const s: SoakSample = {
      t: Math.round((Date.now() - t0) / 1000),
      rssBytes: os?.rssBytes ?? m.get('pobox_process_resident_memory_bytes') ?? 0,
      rssAnonBytes: os?.rssAnonBytes ?? 0,
      rssFileBytes: os?.rssFileBytes ?? 0,
      heapUsedBytes: m.get('pobox_nodejs_heap_size_used_bytes') ?? 0,
      heapTotalBytes: m.get('pobox_nodejs_heap_size_total_bytes') ?? 0,
      externalBytes: m.get('pobox_nodejs_external_memory_bytes') ?? 0,
      loopDelayP99Ms: (m.get('pobox_nodejs_eventloop_lag_p99_seconds') ?? 0) * 1000,
      loopDelayMaxMs: (m.get('pobox_nodejs_eventloop_lag_max_seconds') ?? 0) * 1000,
      activeHandles: m.get('pobox_nodejs_active_handles_total') ?? 0,
      openFds: os?.fds ?? m.get('pobox_process_open_fds') ?? 0,
      connections: m.get('pobox_connections') ?? 0,
      pendingMessages: m.get('pobox_pending_messages') ?? 0,
      unansweredSends: devices.reduce((n, d) => n + d.pendingSends, 0),
      accepted: books.acceptedCount,
      delivered: devices.reduce((n, d) => n + d.received.size, 0),
    };
    samples.push(s);
    log(
      `t=${s.t}s rss ${(s.rssBytes / 2 ** 20).toFixed(0)} MiB (anon ${(s.rssAnonBytes / 2 ** 20).toFixed(0)}, file ${(s.rssFileBytes / 2 ** 20).toFixed(0)}) heap ${(s.heapUsedBytes / 2 ** 20).toFixed(0)} MiB loop p99 ${s.loopDelayP99Ms.toFixed(0)} ms handles ${s.activeHandles} fds ${s.openFds} ` +
        `conns ${s.connections} pending ${s.pendingMessages} unanswered ${s.unansweredSends} accepted ${s.accepted}`,
    );
  };
  await sample();
  const end = t0 + MINUTES * 60_000;
  while (Date.now() < end) {
    if (server.exit) throw new Error(`pobox serve exited during the soak: ${server.exit.code ?? server.exit.signal}`);
    await sleep(Math.min(SAMPLE_EVERY_MS - ((Date.now() - t0) % SAMPLE_EVERY_MS), end - Date.now()));
    await sample();
  }

  // Stop the load, let every send be answered and every message be delivered and acked.
  for (const t of timers) clearInterval(t);
  while (httpBusy || churnBusy) await sleep(100);
  const drainStart = Date.now();
  const expectedFor = (u: string): Set<number> => books.accepted.get(u) ?? new Set();
  const settled = (): boolean =>
    devices.every((d) => d.pendingSends === 0) &&
    devices.every((d) => {
      const exp = expectedFor(d.user);
      const max = Math.max(0, ...exp);
      return d.ackedCursor >= max && [...exp].every((seq) => d.received.has(seq));
    });
  while (!settled() && Date.now() - drainStart < DRAIN_DEADLINE_MS) await sleep(250);
  const drainSeconds = (Date.now() - drainStart) / 1000;
  await sample();

  let lost = 0;
  const lostExamples: string[] = [];
  for (const d of devices) {
    for (const seq of expectedFor(d.user)) {
      if (d.received.has(seq)) continue;
      lost++;
      if (lostExamples.length < 20) lostExamples.push(`${d.user}/${d.device} seq ${seq}`);
    }
  }
  const unansweredAtEnd = devices.reduce((n, d) => n + d.pendingSends, 0);
  const finalMetrics = promValues((await http(server, 'GET', '/metrics', adminKey)).text);
  const connections = devices.reduce((n, d) => n + d.connections, 0);
  const delivered = devices.reduce((n, d) => n + d.received.size, 0);
  await Promise.all(devices.map((d) => d.stop()));
  const exit = await server.stop();
  const serverLogCounts = Object.fromEntries([...server.logCounts.entries()].sort((a, b) => b[1] - a[1]));

  const after = samples.filter((s) => s.t >= WARMUP_S && s !== samples[samples.length - 1]);
  const data: SoakData = {
    minutes: MINUTES,
    warmupSeconds: WARMUP_S,
    params: {
      users: USERS,
      devicesPerUser: DEVICES_PER_USER,
      sendsPerSecond: RATE,
      reconnectEverySeconds: RECONNECT_EVERY_S,
      slowEverySeconds: SLOW_EVERY_S,
      churnEverySeconds: CHURN_EVERY_S,
      sampleEveryMs: SAMPLE_EVERY_MS,
    },
    samples,
    rss: trend(after.map((s) => ({ t: s.t, y: s.rssBytes }))),
    rssAnon: trend(after.map((s) => ({ t: s.t, y: s.rssAnonBytes }))),
    rssFile: trend(after.map((s) => ({ t: s.t, y: s.rssFileBytes }))),
    heap: trend(after.map((s) => ({ t: s.t, y: s.heapUsedBytes }))),
    totals: {
      sent: books.sent,
      accepted: books.acceptedCount,
      duplicateAccepts: books.duplicateAccepts,
      httpSends: totals.httpSends,
      deliveredToStableDevices: delivered,
      connections,
      reconnects: totals.reconnects,
      slowReaderPauses: totals.slowReaderPauses,
      churnedDevices: totals.churnedDevices,
      httpPulls: totals.httpPulls,
    },
    lost,
    lostExamples,
    duplicatedWithinConnection: devices.reduce((n, d) => n + d.duplicates, 0),
    unansweredAtEnd,
    pendingAtEnd: finalMetrics.get('pobox_pending_messages') ?? -1,
    drainSeconds,
    clientErrors: books.errors,
    serverErrorLogLines: [...server.logCounts.entries()].filter(([k]) => Number(k.split(' ')[0]) >= 50).reduce((s, [, n]) => s + n, 0),
    serverLogCounts,
    serverExit: exit.code === 0 ? 'graceful (exit 0 on SIGTERM)' : `exit ${exit.code ?? exit.signal}`,
    diskProbe,
  };
  const dir = resultsDir(args.quick);
  const file = writeResult(dir, {
    name: 'soak',
    quick: args.quick,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: benchMachine(['lmdb', 'ws', 'prom-client']),
    params: data.params,
    notes: ['The machine was shared with other work during the run (2 cores).'],
    data,
  });
  const md = await writeSoakReport(dir, file, data, args.quick);
  log(`wrote ${file} and ${md}`);
  const mib = (b: number): string => (b / 2 ** 20).toFixed(2);
  log(
    `soak ${MINUTES} min, ${samples.length} samples: accepted ${books.acceptedCount}, lost ${lost}, duplicated within a connection ${data.duplicatedWithinConnection}, ` +
      `RSS slope ${mib(data.rss.slopePerHour)} MiB/h (within noise: ${data.rss.withinNoise}), heap slope ${mib(data.heap.slopePerHour)} MiB/h (within noise: ${data.heap.withinNoise})`,
  );
  if (lost > 0 || data.duplicatedWithinConnection > 0) process.exitCode = 1;
}

/** A short-lived device: registered at the head over HTTP, pulls and acks twice, then removed. */
async function churn(server: ServeProcess, user: string, device: string, totals: { churnedDevices: number; httpPulls: number }): Promise<void> {
  const token = await mintToken({ secret, user, device, ttlSeconds: 3600 });
  const reg = await http(server, 'PUT', `/v1/users/${user}/devices/${device}`, token, { start: 'head' });
  if (reg.status !== 201 && reg.status !== 200) throw new Error(`register ${reg.status}`);
  totals.churnedDevices++;
  let after = 0;
  for (let i = 0; i < 2; i++) {
    await sleep(2000);
    const pull = await http(server, 'GET', `/v1/messages?after=${after}&limit=100`, token);
    if (pull.status !== 200) throw new Error(`pull ${pull.status}`);
    totals.httpPulls++;
    const page = pull.json as { messages: Array<{ seq: number }>; nextAfter: number };
    after = page.nextAfter;
    if (page.messages.length > 0) {
      const ack = await http(server, 'POST', '/v1/ack', token, { upTo: after });
      if (ack.status !== 200) throw new Error(`ack ${ack.status}`);
    }
  }
  const del = await http(server, 'DELETE', `/v1/users/${user}/devices/${device}`, adminKey);
  if (del.status !== 200) throw new Error(`remove ${del.status}`);
}

runMain(main);
