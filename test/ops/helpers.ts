/** Shared pieces of the ops tests: a hand-moved clock, waiting on a condition, a webhook receiver. */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A clock the test moves by hand, so nothing sleeps (the conformance suite's). */
export { FakeClock as ManualClock } from '../../tools/fake-clock.js';

export { waitFor } from '../support/wait.js';

/** A local HTTP receiver for the wake-up hook: records every request, answers as told. */
export interface Receiver {
  url: string;
  requests: Array<{ headers: IncomingMessage['headers']; raw: string }>;
  /** The JSON bodies received so far, in order. */
  bodies<T = Record<string, unknown>>(): T[];
  /** Decide each answer; may hold the response open. */
  handler: (req: IncomingMessage, res: ServerResponse, n: number) => void;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const open = new Set<ServerResponse>();
  const r: Receiver = {
    url: '',
    requests: [],
    bodies: <T>() => r.requests.map((q) => JSON.parse(q.raw) as T),
    handler: (_req, res) => res.writeHead(204).end(),
    close: async () => {
      for (const res of open) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (raw += c));
    req.on('end', () => {
      r.requests.push({ headers: req.headers, raw });
      open.add(res);
      res.on('close', () => open.delete(res));
      r.handler(req, res, r.requests.length);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/wake`;
  return r;
}
