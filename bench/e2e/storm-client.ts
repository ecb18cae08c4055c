/**
 * Load generator for the reconnect storm: `count` devices, each with `perUser` messages
 * waiting, all connecting within `spreadMs` from their own 127.x.y.z source address.
 * Each one is a raw `ws` client speaking the protocol: hello, receive the backlog until
 * `caughtUp`, ack cumulatively, and wait for the server's `acked` (the cursor is durable).
 * A device whose socket fails before that reconnects after a short random backoff, like
 * a real client, and it is counted.
 */
import WebSocket from 'ws';
import { mintToken } from '../../src/gateway/auth.js';
import type { ServerFrame } from '../../src/core/protocol.js';
import { sourceAddress, type StormConfig, type StormDevice, type StormReply } from './ipc.js';

const reply = (m: StormReply): void => void process.send!(m);

// First the configuration (tokens are minted before the clock starts), then `go`.
let cfg: StormConfig | undefined;
const tokens: string[] = [];
process.on('message', (raw) => {
  const m = raw as StormConfig | { cmd: 'go'; startAt: number };
  if ('cmd' in m) {
    void run({ ...cfg!, startAt: m.startAt }).catch((err: Error) => reply({ type: 'error', message: err.stack ?? err.message }));
    return;
  }
  cfg = m;
  void (async () => {
    for (let i = 0; i < m.count; i++) {
      tokens.push(await mintToken({ secret: m.secret, user: `${m.prefix}${m.first + i}`, device: 'phone', ttlSeconds: 3600 }));
    }
    reply({ type: 'armed' });
  })().catch((err: Error) => reply({ type: 'error', message: err.message }));
});
process.on('disconnect', () => process.exit(0));

async function run(cfg: StormConfig): Promise<void> {
  const cpu0 = process.cpuUsage();
  const errors: Record<string, number> = {};
  const devices: StormDevice[] = [];
  const sockets = new Set<WebSocket>();
  let remaining = cfg.count;
  let lastAckAt = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const deadline = setTimeout(() => finish(), Math.max(0, cfg.startAt - Date.now()) + cfg.spreadMs + cfg.timeoutMs);

  for (let i = 0; i < cfg.count; i++) {
    const d: StormDevice = { open: -1, caughtUp: -1, acked: -1, received: 0, unique: 0, duplicates: 0, retries: 0, done: false };
    devices.push(d);
    const start = cfg.startAt + (i * cfg.spreadMs) / cfg.count;
    const seen = new Set<number>();
    const connect = (): void => {
      const ws = new WebSocket(`${cfg.wsUrl}?token=${tokens[i]}`, { localAddress: sourceAddress(cfg.addressOctet, i), perMessageDeflate: false });
      sockets.add(ws);
      let maxSeq = 0;
      ws.on('open', () => {
        if (d.open < 0) d.open = Date.now() - start;
        ws.send(JSON.stringify({ type: 'hello', protocol: 1 }));
      });
      ws.on('message', (data) => {
        const f = JSON.parse(String(data)) as ServerFrame;
        if (f.type === 'message') {
          d.received++;
          if (seen.has(f.seq)) d.duplicates++;
          seen.add(f.seq);
          d.unique = seen.size;
          maxSeq = Math.max(maxSeq, f.seq);
        } else if (f.type === 'caughtUp') {
          if (d.caughtUp < 0) d.caughtUp = Date.now() - start;
          if (maxSeq > 0) ws.send(JSON.stringify({ type: 'ack', upTo: maxSeq }));
        } else if (f.type === 'acked') {
          if (!d.done && f.cursor >= cfg.perUser && seen.size >= cfg.perUser) {
            d.done = true;
            d.acked = Date.now() - start;
            lastAckAt = Date.now();
            if (--remaining === 0) finish();
          }
        } else if (f.type === 'error') {
          errors[`frame ${f.code}`] = (errors[`frame ${f.code}`] ?? 0) + 1;
        }
      });
      ws.on('error', (err: Error & { code?: string }) => {
        const key = err.code ?? err.message.slice(0, 60);
        errors[key] = (errors[key] ?? 0) + 1;
      });
      ws.on('close', (code) => {
        sockets.delete(ws);
        if (d.done) return;
        if (code !== 1006) errors[`close ${code}`] = (errors[`close ${code}`] ?? 0) + 1;
        d.retries++;
        setTimeout(connect, 100 + Math.random() * 400);
      });
    };
    setTimeout(connect, Math.max(0, start - Date.now()));
  }

  await finished;
  clearTimeout(deadline);
  for (const ws of sockets) ws.terminate();
  const cpu = process.cpuUsage(cpu0);
  reply({ type: 'storm-done', devices, lastAckAt, errors, cpuMs: (cpu.user + cpu.system) / 1000 });
}
