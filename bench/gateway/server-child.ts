/**
 * The gateway under benchmark, in its own process so the load generator does not share
 * its event loop. Started by bench/gateway.ts with the server config as JSON in argv[2];
 * prints one `READY {json}` line, and shuts down gracefully on SIGTERM.
 */
import { startServer } from '../../src/gateway/server.js';

const config = JSON.parse(process.argv[2] ?? '{}') as Parameters<typeof startServer>[0];
const server = await startServer(config);
process.stdout.write(`READY ${JSON.stringify({ url: server.url, wsUrl: server.wsUrl, port: server.port, store: server.postOffice.store.engine, bus: server.bus.kind })}\n`);

let stopping = false;
const stop = (): void => {
  if (stopping) process.exit(1);
  stopping = true;
  server.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The parent died without telling us (e.g. SIGKILL): do not outlive it.
process.stdin.on('end', stop);
process.stdin.resume();
