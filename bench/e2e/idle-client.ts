/**
 * Load generator for idle-connection capacity: opens WebSocket connections (hello, then
 * nothing but the server's heartbeat pings, which `ws` answers) from one 127.x.y.z source
 * address each, up to the count the parent asks for, a bounded number of handshakes at a
 * time, and holds them. Reports how many are open and the first error that stopped it.
 */
import WebSocket from 'ws';
import { mintToken } from '../../src/gateway/auth.js';
import type { ServerFrame } from '../../src/core/protocol.js';
import { sourceAddress, type IdleConfig, type IdleReply, type IdleRequest } from './ipc.js';

const reply = (m: IdleReply): void => void process.send!(m);
let cfg: IdleConfig | undefined;
const sockets: WebSocket[] = [];
let open = 0;
let failed = 0;
let firstError: string | undefined;
const errors: Record<string, number> = {};

process.on('message', (raw) => {
  const m = raw as IdleConfig | IdleRequest;
  if ('wsUrl' in m) {
    cfg = m;
    reply({ type: 'ready', nofile: Number(process.env.BENCH_NOFILE ?? 0) });
    return;
  }
  if (m.cmd === 'close') {
    for (const ws of sockets) ws.terminate();
    setTimeout(() => process.exit(0), 100);
    return;
  }
  void openTo(m.count).catch((err: Error) => reply({ type: 'error', message: err.message }));
});
process.on('disconnect', () => process.exit(0));

function note(err: string): void {
  failed++;
  firstError ??= err;
  errors[err] = (errors[err] ?? 0) + 1;
}

/** Open one connection and resolve once it is idle (caughtUp) or has failed. */
async function openOne(i: number): Promise<boolean> {
  const c = cfg!;
  const token = await mintToken({ secret: c.secret, user: `${c.prefix}${c.first + i}`, device: 'phone', ttlSeconds: 6 * 3600 });
  return new Promise<boolean>((resolve) => {
    let settled = false;
    const settle = (ok: boolean, err?: string): void => {
      if (settled) return;
      settled = true;
      if (!ok) note(err ?? 'failed');
      resolve(ok);
    };
    let ws: WebSocket;
    try {
      ws = new WebSocket(`${c.wsUrl}?token=${token}`, { localAddress: sourceAddress(c.addressOctet, i), perMessageDeflate: false, handshakeTimeout: 30_000 });
    } catch (err) {
      settle(false, (err as Error & { code?: string }).code ?? (err as Error).message);
      return;
    }
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', protocol: 1 })));
    let idle = false;
    ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as ServerFrame;
      if (f.type === 'caughtUp') {
        idle = true;
        sockets.push(ws);
        settle(true);
      }
    });
    ws.on('error', (err: Error & { code?: string }) => settle(false, err.code ?? err.message.slice(0, 80)));
    ws.on('close', (code) => {
      if (idle) {
        // An idle connection the server dropped later: it no longer counts.
        open--;
        note(`idle connection closed (${code})`);
      }
      settle(false, `close ${code}`);
    });
  });
}

async function openTo(count: number): Promise<void> {
  const c = cfg!;
  let next = open + failed;
  const target = count;
  let stop = false;
  let trying = 0;
  const worker = async (): Promise<void> => {
    while (!stop && open + trying < target) {
      const i = next++;
      trying++;
      const ok = await openOne(i);
      trying--;
      if (ok) open++;
      else if (failed >= 50 || /EMFILE|EADDRNOTAVAIL|ENFILE/.test(firstError ?? '')) stop = true;
    }
  };
  await Promise.all(Array.from({ length: c.inFlight }, worker));
  reply({ type: 'opened', open, failed, ...(firstError ? { firstError } : {}), errors });
}
