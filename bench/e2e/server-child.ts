/**
 * The pobox server for the end-to-end benchmark, in its own process: lmdb in a temp
 * dir, in-process bus, logging off. The parent asks it over IPC to prefill mailboxes,
 * report its memory (after a full GC, so the number is live memory, not garbage), and
 * count what is left pending.
 */
import { rmSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance as perf, type EventLoopUtilization } from 'node:perf_hooks';
import { startServer, type RunningServer } from '../../src/server/compose.js';
import type { ServerReply, ServerRequest } from './ipc.js';

const secret = process.env.BENCH_SECRET;
if (!secret || !process.send) throw new Error('server-child must be forked with BENCH_SECRET and an IPC channel');
const reply = (m: ServerReply): void => void process.send!(m);
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'pobox-bench-e2e-server-'));
let server: RunningServer | undefined = undefined;

/** Close the server (a failed close only means less to clean up), remove its data, exit. */
const shutdown = (): void => {
  (server?.close() ?? Promise.resolve())
    .catch((err: unknown) => process.stderr.write(`server-child: close failed: ${String(err)}\n`))
    .finally(() => {
      rmSync(dataDir, { recursive: true, force: true });
      process.exit(0);
    });
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.on('disconnect', shutdown);

server = await startServer({
  host: '127.0.0.1',
  port: 0,
  dataDir,
  logLevel: 'silent',
  auth: { secrets: [secret] },
  // Sweeping is not what is measured here.
  postOffice: { retention: { sweepIntervalMs: 0 } },
  // bench:e2e --store-worker
  ...(process.env.BENCH_STORE_WORKER === '1' ? { storeWorker: true } : {}),
});
reply({ type: 'ready', port: server.port, nofile: Number(process.env.BENCH_NOFILE ?? 0) });

// The busiest one-second window since the last memory request (sampled every 250 ms).
let peakElu = 0;
const windows: EventLoopUtilization[] = [perf.eventLoopUtilization()];
setInterval(() => {
  const now = perf.eventLoopUtilization();
  windows.push(now);
  if (windows.length > 5) windows.shift();
  peakElu = Math.max(peakElu, perf.eventLoopUtilization(now, windows[0]).utilization);
}, 250).unref();

process.on('message', (raw) => {
  const m = raw as ServerRequest;
  void handle(m).catch((err: Error) => reply({ type: 'error', message: err.message }));
});

async function handle(m: ServerRequest): Promise<void> {
  const po = server!.postOffice;
  switch (m.cmd) {
    case 'prefill': {
      const t0 = performance.now();
      const chunk = 2000;
      const total = m.users * m.perUser;
      for (let off = 0; off < total; off += chunk) {
        const sends = [];
        for (let i = off; i < Math.min(off + chunk, total); i++) {
          // k-major order: every user's k-th message before anyone's (k+1)-th, as traffic interleaves.
          const u = i % m.users;
          const k = Math.floor(i / m.users);
          sends.push(po.send({ from: 'sender', to: `${m.prefix}${u}`, id: `m-${u}-${k}`, body: `message ${k} for ${m.prefix}${u}` }));
        }
        await Promise.all(sends);
      }
      reply({ type: 'prefilled', ms: performance.now() - t0 });
      return;
    }
    case 'memory': {
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      gc?.();
      const mem = process.memoryUsage();
      const cpu = process.cpuUsage();
      // Event-loop time busy vs idle: the server runs its JavaScript on one thread, so near 100% busy means saturated.
      const elu = perf.eventLoopUtilization();
      const peak = peakElu;
      // Start the next window after the forced GC, so it does not count as load.
      peakElu = 0;
      windows.splice(0, windows.length, elu);
      reply({
        type: 'memory',
        rss: mem.rss,
        heapUsed: mem.heapUsed,
        external: mem.external,
        sessions: server!.sessions().length,
        cpuMs: (cpu.user + cpu.system) / 1000,
        eluIdle: elu.idle,
        eluActive: elu.active,
        eluPeak1s: peak,
      });
      return;
    }
    case 'pending': {
      let pending = 0;
      let messagesLeft = 0;
      for (let u = 0; u < m.users; u++) {
        const s = await po.stats(`${m.prefix}${u}`);
        messagesLeft += s.pending;
        const cursor = s.devices[0]?.cursor ?? 0;
        if (cursor < s.lastSeq) pending++;
      }
      reply({ type: 'pending', pending, messagesLeft });
      return;
    }
    case 'close':
      shutdown();
  }
}
