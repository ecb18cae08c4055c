/**
 * How often does the machine's nats-server fsync JetStream data? Its configuration is
 * not ours to read reliably (it may have been started with flags only), so we measure:
 * attach `strace -c` to the server for a burst of acknowledged publishes and count the
 * fsync/fdatasync calls. Runs before the timed NATS phase, so tracing never slows the
 * numbers we report. Needs strace and ptrace permission; says so when it cannot run.
 */
import { execFileSync, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, StorageType } from 'nats';
import { randomBytes } from 'node:crypto';
import { onCleanup } from '../lib/cleanup.js';
import { NATS_URL } from './nats.js';

export interface FsyncProbe {
  publishes: number;
  fsyncCalls: number | null;
  /** Plain words for the README. */
  summary: string;
}

function serverPid(port: number): number | undefined {
  try {
    const out = execFileSync('ss', ['-ltnpH', `sport = :${port}`], { encoding: 'utf8' });
    const m = /pid=(\d+)/.exec(out);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export async function natsFsyncProbe(publishes = 300): Promise<FsyncProbe> {
  const pid = serverPid(4222);
  if (pid === undefined) return { publishes: 0, fsyncCalls: null, summary: 'fsync behaviour not measured (could not find the nats-server process)' };
  const tag = randomBytes(4).toString('hex');
  const stream = `POBOX_FSYNC_PROBE_${tag}`;
  const nc = await connect({ servers: NATS_URL });
  const jsm = await nc.jetstreamManager();
  const remove = onCleanup(`nats stream ${stream}`, async () => {
    await jsm.streams.delete(stream).catch(() => undefined);
    await nc.close().catch(() => undefined);
  });
  try {
    await jsm.streams.add({ name: stream, subjects: [`pobox-fsync-probe.${tag}.>`], storage: StorageType.File, num_replicas: 1 });
    const js = nc.jetstream();
    await js.publish(`pobox-fsync-probe.${tag}.warm`, 'warm');
    const tracer = spawn('strace', ['-f', '-c', '-e', 'trace=fsync,fdatasync,sync_file_range,write,pwrite64,writev', '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
    const stopTracer = onCleanup('strace', () => tracer.kill('SIGINT'));
    let report = '';
    tracer.stderr!.on('data', (c: Buffer) => (report += c.toString()));
    const done = new Promise<number | null>((resolve) => tracer.once('exit', (code) => resolve(code)));
    const started = await Promise.race([
      new Promise<boolean>((resolve) => {
        const check = setInterval(() => {
          if (report.includes('attached')) {
            clearInterval(check);
            resolve(true);
          }
        }, 20);
        done.then(
          () => {
            clearInterval(check);
            resolve(false);
          },
          () => resolve(false),
        );
      }),
      sleep(5000).then(() => false),
    ]);
    if (!started) {
      await stopTracer();
      return { publishes: 0, fsyncCalls: null, summary: `fsync behaviour not measured (strace could not attach: ${report.trim().split('\n')[0] ?? 'no output'})` };
    }
    const t0 = performance.now();
    for (let i = 0; i < publishes; i++) await js.publish(`pobox-fsync-probe.${tag}.u${i % 10}`, `probe ${i}`, { msgID: `p${i}` });
    const secs = (performance.now() - t0) / 1000;
    await sleep(200);
    await stopTracer();
    await done;
    let calls = 0;
    let writes = 0;
    for (const line of report.split('\n')) {
      // strace -c rows: % time, seconds, usecs/call, calls, [errors,] syscall
      const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(line);
      if (!m) continue;
      if (/^(fsync|fdatasync|sync_file_range)$/.test(m[2]!)) calls += Number(m[1]);
      else writes += Number(m[1]);
    }
    if (writes === 0) return { publishes, fsyncCalls: null, summary: `fsync behaviour not measured (strace saw no writes: ${report.trim().slice(0, 200)})` };
    return {
      publishes,
      fsyncCalls: calls,
      summary:
        `measured with strace on the server: ${calls} fsync/fdatasync call(s) (and ${writes} write calls) during ${publishes} acknowledged publishes over ${secs.toFixed(2)} s; ` +
        (calls < publishes / 10
          ? "so a PubAck does not wait for an fsync: an acknowledged message can be lost if the machine (not just the process) fails before the OS or the server's periodic sync writes it out. Newer nats-server versions offer `sync_interval: always`; this version has no such setting (its configuration parser does not know the key)."
          : 'the server fsyncs about once per publish.'),
    };
  } finally {
    await remove();
  }
}
