/**
 * The long fuzz run: `npm run fuzz -- --runs 1000000` plays that many hostile inputs
 * (bench/lib/fuzz-inputs.ts) against a live `pobox serve` on 127.0.0.1:
 *
 * - WebSocket frames (75%): sessions with a valid, expired, forged, unsigned or garbage
 *   credential, an optional hello, then valid, mutated, random, binary and oversized frames;
 * - HTTP requests (20%): every route with mutated bodies, bad path and query parameters,
 *   wrong methods and content types, bad credentials, oversized bodies;
 * - raw bytes (5%): broken request lines and headers, header floods, bad chunking, for
 *   Node's HTTP parser.
 *
 * Every input must be answered within --deadline-ms (default 10 s; otherwise a hang).
 * Every 5 s a probe checks that the server still serves a valid send over HTTP and over a
 * WebSocket. The results page counts inputs, answers by status/code/close code, and every
 * 5xx, INTERNAL, untyped answer, hang and crash, with the inputs that caused them
 * (replayable from --seed and the batch/index given).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type fc from 'fast-check';
import WebSocket from 'ws';
import { benchArgs, numberFlag } from './lib/args.js';
import { runMain } from './lib/cleanup.js';
import { fdatasyncLatency } from './lib/disk-probe.js';
import { isServerFailure, keepAliveAgent, resolveCredential, runHttp, runRaw, runWsSession, type FuzzSecrets } from './lib/fuzz-client.js';
import { httpInput, rawHttpRequest, sampleBatch, wsSessionOf, type HttpInput, type WsSession } from './lib/fuzz-inputs.js';
import { writeFuzzReport, type FuzzData, type Finding } from './lib/fuzz-report.js';
import { benchMachine, resultsDir, writeResult } from './lib/results.js';
import { log, progress } from './lib/progress.js';
import { startServeProcess, type ServeProcess } from './lib/serve-process.js';
import { mintToken } from '../src/gateway/auth.js';

const args = benchArgs({ runs: { type: 'string' }, seed: { type: 'string' }, 'deadline-ms': { type: 'string' }, 'max-minutes': { type: 'string' } });
const RUNS = numberFlag(args, 'runs', args.quick ? 20_000 : 100_000);
/** Stop early (and say so in the results) if the run would take longer than this. */
const MAX_MINUTES = numberFlag(args, 'max-minutes', 24 * 60);
const SEED = numberFlag(args, 'seed', 1);
const DEADLINE_MS = numberFlag(args, 'deadline-ms', 10_000);
const PROBE_EVERY_MS = 5_000;
const BATCH = 200;
/** Shares of the inputs and how many run at once (bounded: the machine has 2 cores). */
const PLAN = { ws: { share: 0.75, workers: 6 }, http: { share: 0.2, workers: 6 }, raw: { share: 0.05, workers: 2 } } as const;
const SAMPLES_PER_KIND = 20;
/**
 * Frames per session, and the server's tolerance for invalid frames on one connection
 * (default 10) raised to match: a WebSocket handshake costs far more than a frame, so
 * longer sessions put more frames through the parser per CPU second. Sessions past 40
 * bad frames still meet the 4008 close.
 */
const FRAMES_PER_SESSION = 60;
const MAX_INVALID_FRAMES = 40;

const secrets: FuzzSecrets = {
  secret: `fuzz-secret-${Math.random().toString(36).slice(2)}-0123456789abcdef`,
  sendKey: `fuzz-send-key-${Math.random().toString(36).slice(2)}-0123456789`,
  adminKey: `fuzz-admin-key-${Math.random().toString(36).slice(2)}-012345678`,
};

/** 127.0.0.0/8 is all loopback on Linux: one source address per few sessions keeps the per-address connect limiter out of the way. */
function sourceAddress(i: number): string {
  const n = i % 60_000;
  return `127.${1 + Math.floor(n / 64_516)}.${1 + (Math.floor(n / 254) % 254)}.${1 + (n % 254)}`;
}

/** Inputs of one kind in a fixed order: batch b of the seed is always the same inputs. */
class InputStream<T> {
  private batch = 0;
  private queue: T[] = [];
  private index = 0;
  constructor(
    private readonly arb: fc.Arbitrary<T>,
    private readonly seed: number,
  ) {}
  /** Batches the generators themselves failed on (a bug in fuzz-inputs.ts, not the server). */
  generatorErrors: string[] = [];
  next(): { value: T; batch: number; index: number } {
    while (this.index >= this.queue.length) {
      try {
        this.queue = sampleBatch(this.arb, this.seed, ++this.batch, BATCH);
      } catch (err) {
        this.generatorErrors.push(`batch ${this.batch}: ${(err as Error).message.slice(0, 200)}`);
        this.queue = [];
      }
      this.index = 0;
    }
    return { value: this.queue[this.index]!, batch: this.batch, index: this.index++ };
  }
}

function bump(map: Record<string, number>, key: string, n = 1): void {
  map[key] = (map[key] ?? 0) + n;
}

function describeWs(s: WsSession): string {
  const frames = s.frames.map((f) =>
    f.kind === 'binary' ? `<binary ${f.bytes.length} bytes>` : f.text.length > 300 ? `${f.text.slice(0, 300)}...(${f.text.length} chars)` : f.text,
  );
  return JSON.stringify({ auth: s.auth, hello: s.hello, frames }).slice(0, 2000);
}

function describeHttp(h: HttpInput): string {
  const body =
    h.body === undefined
      ? undefined
      : typeof h.body === 'string'
        ? h.body.length > 300
          ? `${h.body.slice(0, 300)}...(${h.body.length} chars)`
          : h.body
        : `<${h.body.length} bytes>`;
  return JSON.stringify({ ...h, body }).slice(0, 2000);
}

async function main(): Promise<void> {
  const probe = await fdatasyncLatency();
  const server = await startServeProcess({
    secret: secrets.secret,
    apiKeys: [
      { key: secrets.sendKey, name: 'fuzz-send', scopes: ['send'] },
      { key: secrets.adminKey, name: 'fuzz-admin', scopes: ['admin'] },
    ],
    logLevel: 'warn',
    config: { limits: { maxInvalidFrames: MAX_INVALID_FRAMES } },
  });
  log(`pobox serve pid ${server.pid} at ${server.url}; ${RUNS} inputs, seed ${SEED}, deadline ${DEADLINE_MS} ms`);
  const startedAt = new Date().toISOString();
  const t0 = Date.now();
  const rssStart = server.osStats()?.rssBytes ?? 0;

  const data: FuzzData = {
    runs: RUNS,
    seed: SEED,
    deadlineMs: DEADLINE_MS,
    inputs: { wsFrames: 0, wsSessions: 0, http: 0, raw: 0, total: 0 },
    answers: { ws: {}, wsClose: {}, wsUpgrade: {}, http: {}, raw: {} },
    counts: { fiveXX: 0, internal: 0, untyped: 0, hang: 0, crash: 0, probeFailures: 0 },
    findings: { fiveXX: [], internal: [], untyped: [], hang: [], crash: [], probe: [] },
    probes: { ok: 0, failed: 0, maxMs: 0 },
    server: { pid: server.pid, rssStartBytes: rssStart, rssEndBytes: 0, errorLogLines: 0, logCounts: {}, errorSamples: [], exit: null },
    durationMs: 0,
    diskProbe: probe,
    maxInvalidFrames: MAX_INVALID_FRAMES,
    generatorErrors: [],
  };
  const finding = (kind: keyof FuzzData['findings'], f: Finding): void => {
    const list = data.findings[kind];
    if (list.length < SAMPLES_PER_KIND) list.push(f);
  };
  const bar = progress('fuzz inputs', RUNS);
  let stopped = false;
  const target = { ws: Math.round(RUNS * PLAN.ws.share), http: Math.round(RUNS * PLAN.http.share) };
  target.http = Math.min(target.http, RUNS - target.ws);
  const rawTarget = RUNS - target.ws - target.http;
  const count = (kind: 'wsFrames' | 'http' | 'raw', n: number): void => {
    data.inputs[kind] += n;
    data.inputs.total += n;
    bar.tick(n);
  };

  const wsStream = new InputStream(wsSessionOf(FRAMES_PER_SESSION), SEED);
  const httpStream = new InputStream(httpInput, SEED + 1);
  const rawStream = new InputStream(rawHttpRequest, SEED + 2);
  let sessionNo = 0;

  const wsWorker = async (): Promise<void> => {
    while (!stopped && data.inputs.wsFrames < target.ws) {
      const { value: s, batch, index } = wsStream.next();
      const n = sessionNo++;
      const user = `fz${n % 500}`;
      const token = await resolveCredential(s.auth, secrets, user, `d${n % 3}`);
      const r = await runWsSession(server.wsUrl, s, token, DEADLINE_MS, { localAddress: sourceAddress(n) });
      data.inputs.wsSessions++;
      count('wsFrames', r.sent);
      for (const a of r.answers) bump(data.answers.ws, a);
      if (r.close !== undefined) bump(data.answers.wsClose, String(r.close));
      if (r.upgradeStatus !== undefined) bump(data.answers.wsUpgrade, String(r.upgradeStatus));
      const where = { via: 'ws' as const, seed: SEED, batch, index, input: describeWs(s) };
      if (r.hang) {
        data.counts.hang++;
        finding('hang', { ...where, answer: r.answers.join(',') });
      }
      if (r.answers.includes('error:INTERNAL') || r.close === 1011) {
        data.counts.internal++;
        finding('internal', { ...where, answer: `${r.answers.join(',')} close ${r.close}` });
      }
      if (r.upgradeStatus !== undefined && r.upgradeStatus >= 500) {
        data.counts.fiveXX++;
        finding('fiveXX', { ...where, answer: `upgrade ${r.upgradeStatus}` });
      }
      if (r.untyped.length > 0 || r.upgradeStatus !== undefined) {
        data.counts.untyped++;
        finding('untyped', { ...where, answer: r.untyped.join(' | ') || `upgrade answered ${r.upgradeStatus}` });
      }
    }
  };

  const agent = keepAliveAgent();
  const httpWorker = async (): Promise<void> => {
    let n = 0;
    while (!stopped && data.inputs.http < target.http) {
      const { value: h, batch, index } = httpStream.next();
      const credential = await resolveCredential(h.auth, secrets, `fz${n % 500}`, `d${n++ % 3}`);
      const r = await runHttp(server.url, h, credential, DEADLINE_MS, agent);
      count('http', 1);
      bump(
        data.answers.http,
        r.status === -1 ? 'not sent (client refused)' : r.status === 0 ? (r.hang ? 'no answer' : 'connection closed') : `${r.status}${r.code ? ` ${r.code}` : ''}`,
      );
      const where = { via: 'http' as const, seed: SEED + 1, batch, index, input: describeHttp(h) };
      if (r.hang) {
        data.counts.hang++;
        finding('hang', { ...where, answer: 'no answer' });
      }
      if (isServerFailure(r.status, r.typed)) {
        data.counts.fiveXX++;
        finding('fiveXX', { ...where, answer: `${r.status} ${r.code ?? ''} ${r.sample ?? ''}` });
      }
      if (r.code === 'INTERNAL') {
        data.counts.internal++;
        finding('internal', { ...where, answer: `${r.status} ${r.sample ?? ''}` });
      }
      if (!r.typed && !r.hang) {
        data.counts.untyped++;
        finding('untyped', { ...where, answer: `${r.status} ${r.sample ?? ''}` });
      }
    }
  };

  const rawWorker = async (): Promise<void> => {
    while (!stopped && data.inputs.raw < rawTarget) {
      const { value: bytes, batch, index } = rawStream.next();
      const r = await runRaw(server.host, server.port, bytes, DEADLINE_MS);
      count('raw', 1);
      bump(data.answers.raw, r.status === 0 ? (r.hang ? 'no answer' : 'closed without an answer') : `${r.status}${r.typed ? '' : ' (untyped)'}`);
      const where = { via: 'raw' as const, seed: SEED + 2, batch, index, input: JSON.stringify(bytes.length > 400 ? `${bytes.slice(0, 400)}...(${bytes.length} chars)` : bytes) };
      if (r.hang) {
        data.counts.hang++;
        finding('hang', { ...where, answer: 'no answer' });
      }
      if (isServerFailure(r.status, r.typed)) {
        data.counts.fiveXX++;
        finding('fiveXX', { ...where, answer: r.sample ?? String(r.status) });
      }
      if (!r.typed) {
        data.counts.untyped++;
        finding('untyped', { ...where, answer: r.sample ?? '' });
      }
    }
  };

  /** A valid send over HTTP and a valid session over WebSocket, each within the deadline. */
  let probeNo = 0;
  const probeOnce = async (): Promise<void> => {
    const t = Date.now();
    const id = `probe-${probeNo++}`;
    const problems: string[] = [];
    const http = await runHttp(
      server.url,
      {
        method: 'POST',
        path: '/v1/messages',
        auth: undefined,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ from: 'prober', to: 'probe-rcpt', id, body: 'probe' }),
      },
      secrets.sendKey,
      DEADLINE_MS,
    );
    if (http.status !== 201) problems.push(`HTTP send answered ${http.status} ${http.code ?? ''}${http.hang ? ' (no answer)' : ''}`);
    const ws = await wsProbe(server, `${id}-ws`);
    if (ws) problems.push(ws);
    const ms = Date.now() - t;
    data.probes.maxMs = Math.max(data.probes.maxMs, ms);
    if (problems.length === 0) data.probes.ok++;
    else {
      data.probes.failed++;
      data.counts.probeFailures++;
      finding('probe', { via: 'probe', seed: SEED, batch: probeNo, index: 0, input: id, answer: problems.join('; ') });
    }
  };
  const prober = (async () => {
    while (!stopped) {
      if (Date.now() - t0 > MAX_MINUTES * 60_000) {
        log(`stopping: --max-minutes ${MAX_MINUTES} reached after ${data.inputs.total} inputs`);
        data.stoppedEarly = `stopped by --max-minutes ${MAX_MINUTES} after ${data.inputs.total} of ${RUNS} inputs`;
        stopped = true;
        break;
      }
      await sleep(PROBE_EVERY_MS);
      if (stopped) break;
      if (server.exit) {
        data.counts.crash++;
        finding('crash', { via: 'probe', seed: SEED, batch: 0, index: 0, input: '(the server process)', answer: `exited ${server.exit.code ?? server.exit.signal}` });
        stopped = true;
        break;
      }
      await probeOnce();
    }
  })();

  await Promise.all([
    ...Array.from({ length: PLAN.ws.workers }, wsWorker),
    ...Array.from({ length: PLAN.http.workers }, httpWorker),
    ...Array.from({ length: PLAN.raw.workers }, rawWorker),
  ]);
  stopped = true;
  await prober;
  bar.stop();
  agent.destroy();
  // One last probe after the run, then a graceful stop: it must exit 0.
  if (!server.exit) await probeOnce();
  data.durationMs = Date.now() - t0;
  data.generatorErrors = [...wsStream.generatorErrors, ...httpStream.generatorErrors, ...rawStream.generatorErrors];
  data.server.rssEndBytes = server.osStats()?.rssBytes ?? 0;
  const crashed = server.exit !== undefined;
  const exit = await server.stop();
  data.server.exit = crashed ? `crashed: ${exit.code ?? exit.signal}` : exit.code === 0 ? 'graceful (exit 0 on SIGTERM)' : `exit ${exit.code ?? exit.signal} on SIGTERM`;
  if (crashed) data.counts.crash = Math.max(1, data.counts.crash);
  data.server.logCounts = Object.fromEntries([...server.logCounts.entries()].sort((a, b) => b[1] - a[1]));
  data.server.errorLogLines = [...server.logCounts.entries()].filter(([k]) => Number(k.split(' ')[0]) >= 50).reduce((s, [, n]) => s + n, 0);
  data.server.errorSamples = server.errorLines.slice(0, 10);

  const dir = resultsDir(args.quick);
  const file = writeResult(dir, {
    name: 'fuzz',
    quick: args.quick,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: benchMachine(['fast-check', 'ws', 'lmdb', 'zod']),
    params: {
      runs: RUNS,
      seed: SEED,
      deadlineMs: DEADLINE_MS,
      plan: PLAN,
      probeEveryMs: PROBE_EVERY_MS,
      framesPerSession: FRAMES_PER_SESSION,
      maxInvalidFrames: MAX_INVALID_FRAMES,
    },
    notes: ['The machine was shared with other work during the run (2 cores); rates are indicative only.'],
    data,
  });
  const md = writeFuzzReport(dir, file, data);
  log(`wrote ${file} and ${md}`);
  log(
    `inputs ${data.inputs.total} (ws frames ${data.inputs.wsFrames} in ${data.inputs.wsSessions} sessions, http ${data.inputs.http}, raw ${data.inputs.raw}); ` +
      `5xx ${data.counts.fiveXX}, INTERNAL ${data.counts.internal}, untyped ${data.counts.untyped}, hangs ${data.counts.hang}, crashes ${data.counts.crash}, probe failures ${data.counts.probeFailures}`,
  );
}

/** Open a session as a real client would, say hello, send one message and wait for `accepted`. */
async function wsProbe(server: ServeProcess, id: string): Promise<string | undefined> {
  const token = await mintToken({ secret: secrets.secret, user: 'prober', device: 'p1', ttlSeconds: 600 });
  return new Promise((resolve) => {
    const ws = new WebSocket(server.wsUrl, { headers: { authorization: `Bearer ${token}` } });
    const timer = setTimeout(() => done(`WebSocket probe: no accepted within ${DEADLINE_MS} ms`), DEADLINE_MS);
    const done = (problem: string | undefined): void => {
      clearTimeout(timer);
      ws.terminate();
      resolve(problem);
    };
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', protocol: 1 })));
    ws.on('message', (raw) => {
      const f = JSON.parse(raw.toString()) as { type: string; id?: string; code?: string; seq?: number };
      if (f.type === 'welcome') ws.send(JSON.stringify({ type: 'send', id, to: 'probe-rcpt', body: 'probe' }));
      else if (f.type === 'message' && f.seq !== undefined) ws.send(JSON.stringify({ type: 'ack', upTo: f.seq }));
      else if (f.type === 'accepted' && f.id === id) done(undefined);
      else if (f.type === 'error') done(`WebSocket probe: error ${f.code}`);
    });
    ws.on('close', (code) => done(`WebSocket probe: closed ${code}`));
    ws.on('error', (err) => done(`WebSocket probe: ${err.message}`));
  });
}

runMain(main);
