/**
 * Write amplification of the embedded engine (not a test):
 *
 *   node --import tsx bench/store-write-amp.ts [--label after] [--messages 20000] [--users 2000]
 *
 * Bytes this process caused to be written to storage (/proc/self/io write_bytes, counted
 * when pages are dirtied; the file system's own journal is not included) per accepted
 * 200-byte message, from the first send until the store is closed (so a later apply of
 * the write-ahead log, and its trim, are counted too). Two recipients:
 *   - online: the recipient's device acks each message 0-10 ms after it was accepted;
 *   - offline: nobody acks, every message stays pending.
 * Each scenario runs in a fresh directory, beside the disk's own fdatasync probe taken
 * in the same run. Results are merged into bench/results/store-write-amp.json under
 * the label, so "before" and "after" runs sit side by side.
 */
import { readFileSync, existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { benchArgs, numberFlag } from './lib/args.js';
import { fdatasyncLatency } from './lib/disk-probe.js';
import { runMain } from './lib/cleanup.js';
import { log } from './lib/progress.js';
import { benchMachine, resultsDir } from './lib/results.js';
import { tempDir } from './lib/temp.js';
import { openLmdbStore } from '../src/store/lmdb/index.js';
import { PostOffice } from '../src/postoffice/post-office.js';

const BODY_BYTES = 200;
const BODY_BASE =
  'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris. ';
const bodyFor = (n: number): string => `${n}: ${BODY_BASE}${BODY_BASE}`.slice(0, BODY_BYTES);

function ioWriteBytes(): number {
  const m = /write_bytes: (\d+)/.exec(readFileSync('/proc/self/io', 'utf8'));
  return m ? Number(m[1]) : NaN;
}

interface Scenario {
  recipient: 'online' | 'offline';
  messages: number;
  users: number;
  seconds: number;
  writeBytes: number;
  bytesPerMessage: number;
}

async function scenario(recipient: 'online' | 'offline', messages: number, users: number, senders: number): Promise<Scenario> {
  const dir = tempDir(`write-amp-${recipient}`);
  const store = await openLmdbStore({ path: dir.path });
  const po = new PostOffice({ store, sweeper: false, config: { limits: { maxMailboxMessages: 1_000_000, maxMailboxBytes: 1 << 30 } } });
  for (let i = 0; i < users; i += 500) {
    await Promise.all(Array.from({ length: Math.min(500, users - i) }, (_, k) => po.registerDevice(`u${i + k}`, 'd')));
  }
  const before = ioWriteBytes();
  const t0 = process.hrtime.bigint();
  const acks: Promise<unknown>[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: senders }, async () => {
      while (next < messages) {
        const n = next++;
        const to = `u${n % users}`;
        const r = await po.send({ to, from: `s${n % 97}`, id: `m${n}`, body: bodyFor(n) });
        if (recipient === 'online') {
          acks.push(new Promise((resolve) => setTimeout(resolve, Math.random() * 10)).then(() => po.ack(to, 'd', r.seq)));
        }
      }
    }),
  );
  await Promise.all(acks);
  await po.close();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const writeBytes = ioWriteBytes() - before;
  await dir.remove();
  return { recipient, messages, users, seconds: Math.round(seconds * 100) / 100, writeBytes, bytesPerMessage: Math.round((writeBytes / messages) * 10) / 10 };
}

runMain(async () => {
  const args = benchArgs({ label: { type: 'string' }, messages: { type: 'string' }, users: { type: 'string' }, senders: { type: 'string' } });
  const label = typeof args.values.label === 'string' ? args.values.label : 'current';
  const messages = numberFlag(args, 'messages', args.quick ? 2000 : 20_000);
  const users = numberFlag(args, 'users', args.quick ? 200 : 2000);
  const senders = numberFlag(args, 'senders', 64);
  const disk = await fdatasyncLatency();
  log(`write-amp: disk 4 KiB append + fdatasync p50 ${disk.p50} ms, p99 ${disk.p99} ms`);
  const runs: Scenario[] = [];
  for (const recipient of ['online', 'offline'] as const) {
    const s = await scenario(recipient, messages, users, senders);
    log(`write-amp [${label}] ${recipient}: ${s.bytesPerMessage} B written per message (${s.writeBytes} B for ${messages} messages in ${s.seconds} s)`);
    runs.push(s);
  }
  const file = path.join(resultsDir(args.quick), 'store-write-amp.json');
  const all: Record<string, unknown> = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
  const prev = (all[label] as unknown[] | undefined) ?? [];
  all[label] = [...prev, { startedAt: new Date().toISOString(), machine: benchMachine(['lmdb']), diskFdatasyncMs: { p50: disk.p50, p99: disk.p99 }, senders, runs }];
  writeFileSync(file, `${JSON.stringify(all, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify({ label, disk: { p50: disk.p50, p99: disk.p99 }, runs })}\n`);
});
