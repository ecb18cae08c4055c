/**
 * What the MessagePack encoding saves (not a test): npm run bench:binary [-- --quick]
 *
 * One in-process server (embedded engine, loopback). A mailbox holds 1,000 messages of
 * 1 KiB of random bytes; a fresh device of the user drains all of them over a raw
 * WebSocket, from `hello` to `caughtUp`, once with JSON frames (bytes as base64 with
 * `binary: true`) and once with `?encoding=msgpack` (bytes as raw bin values), the two
 * alternating for several rounds. Measured per drain: bytes the client's socket read
 * (WebSocket framing and the upgrade answer included: bytes on the wire), the frames'
 * payload bytes, and the time from hello to caughtUp. Counts of bytes do not depend on
 * the machine's load; times do (the load average is written beside them).
 * Writes bench/results/binary-drain.json and .md (quick runs: bench/results/quick/).
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { Duplex } from 'node:stream';
import { parseArgs } from 'node:util';
import { Packr } from 'msgpackr';
import { WebSocket } from 'ws';
import { mintToken } from '../src/gateway/auth.js';
import { startServer } from '../src/server/compose.js';
import { benchMachine, resultsDir, writeResultPages } from './lib/results.js';
import { percentile } from './lib/stats.js';
import { tempDir } from './lib/temp.js';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, rounds: { type: 'string' } } });
const quick = values.quick;
const MESSAGES = 1000;
const BODY = 1024;
const ROUNDS = Number(values.rounds ?? (quick ? 2 : 7));
const packr = new Packr({ useRecords: false });

type Encoding = 'json' | 'msgpack';
interface Drain {
  encoding: Encoding;
  wireBytes: number;
  payloadBytes: number;
  messages: number;
  ms: number;
}

async function drain(wsUrl: string, token: string, encoding: Encoding): Promise<Drain> {
  const ws = new WebSocket(`${wsUrl}?token=${token}${encoding === 'msgpack' ? '&encoding=msgpack' : ''}`);
  let payloadBytes = 0;
  let messages = 0;
  let t0 = 0;
  const done = new Promise<number>((resolve, reject) => {
    ws.on('message', (data: Buffer) => {
      payloadBytes += data.length;
      const f = (encoding === 'json' ? JSON.parse(data.toString('utf8')) : packr.unpack(data)) as { type: string; body?: unknown };
      if (f.type === 'message') {
        messages++;
      } else if (f.type === 'caughtUp') resolve(performance.now() - t0);
      else if (f.type === 'error') reject(new Error(JSON.stringify(f)));
    });
    ws.once('error', reject);
  });
  await new Promise((r) => ws.once('open', r));
  t0 = performance.now();
  ws.send(JSON.stringify({ type: 'hello' }));
  const ms = await done;
  const socket = (ws as unknown as { _socket: Duplex & { bytesRead: number } })._socket;
  const wireBytes = socket.bytesRead;
  ws.close();
  await new Promise((r) => ws.once('close', r));
  return { encoding, wireBytes, payloadBytes, messages, ms: Math.round(ms * 10) / 10 };
}

const median = (xs: number[]): number =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );

async function main(): Promise<void> {
  const machine = benchMachine(['ws', 'msgpackr', 'lmdb']);
  const startedAt = new Date().toISOString();
  const dir = tempDir('binary');
  const secret = randomBytes(32).toString('base64url');
  const server = await startServer({ port: 0, dataDir: dir.path, logLevel: 'silent', auth: { secrets: [secret] } });
  try {
    const po = server.postOffice;
    // A first device that never acks keeps the messages stored for every later device.
    await po.registerDevice('bob', 'keeper', 'oldest');
    for (let i = 0; i < MESSAGES; i++) await po.send({ to: 'bob', from: 'alice', id: `m${i}`, body: randomBytes(BODY) });
    const drains: Drain[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      for (const encoding of (r % 2 === 0 ? ['json', 'msgpack'] : ['msgpack', 'json']) as Encoding[]) {
        const device = `${encoding}-${r}`;
        await po.registerDevice('bob', device, 'oldest');
        const d = await drain(server.wsUrl, await mintToken({ secret, user: 'bob', device }), encoding);
        if (d.messages !== MESSAGES) throw new Error(`${encoding} drain got ${d.messages} messages`);
        drains.push(d);
        console.log(`${encoding.padEnd(8)} ${d.wireBytes} bytes on the wire, ${d.ms} ms`);
      }
    }
    const summary = (['json', 'msgpack'] as Encoding[]).map((encoding) => {
      const ds = drains.filter((d) => d.encoding === encoding);
      return {
        encoding,
        wireBytes: median(ds.map((d) => d.wireBytes)),
        payloadBytes: median(ds.map((d) => d.payloadBytes)),
        medianMs: median(ds.map((d) => d.ms)),
        runs: ds.length,
      };
    });
    const [json, msgpack] = summary as [(typeof summary)[0], (typeof summary)[0]];
    const saved = {
      wireBytes: json.wireBytes - msgpack.wireBytes,
      wireFraction: Math.round((1 - msgpack.wireBytes / json.wireBytes) * 1000) / 1000,
      ms: Math.round((json.medianMs - msgpack.medianMs) * 10) / 10,
    };
    const loadavg = os.loadavg().map((l) => Math.round(l * 100) / 100);
    const notes = [
      'Bytes on the wire are the client socket bytesRead from connect to caughtUp: upgrade answer, welcome, 1,000 message frames and caughtUp, with WebSocket framing.',
      `Load average at start ${machine.loadavg.join(' / ')}, at end ${loadavg.join(' / ')} (shared 2-core machine: the times move with it, the byte counts do not).`,
    ];
    const md = writeResultPages(
      resultsDir(quick),
      {
        name: 'binary-drain',
        quick,
        startedAt,
        finishedAt: new Date().toISOString(),
        machine,
        params: { messages: MESSAGES, bodyBytes: BODY, rounds: ROUNDS },
        notes,
        data: { summary, saved, drains, loadavgEnd: loadavg },
      },
      [
        '# Drain of 1,000 x 1 KiB of bytes: JSON (base64) vs MessagePack (raw bytes)',
        '',
        `Run: \`npm run bench:binary${quick ? ' -- --quick' : ''}\` (${startedAt}), ${ROUNDS} drains per encoding, alternating; medians.`,
        '',
        '| encoding | bytes on the wire | frame payload bytes | hello -> caughtUp (ms, median) |',
        '| --- | ---: | ---: | ---: |',
        ...summary.map((s) => `| ${s.encoding} | ${s.wireBytes} | ${s.payloadBytes} | ${s.medianMs} |`),
        '',
        `MessagePack saves ${saved.wireBytes} bytes on the wire (${(saved.wireFraction * 100).toFixed(1)}%) and ${saved.ms} ms per drain.`,
      ],
    );
    console.log(md);
  } finally {
    await server.close();
    await dir.remove();
  }
}

await main();
