/**
 * The gateway under benchmark, in its own process so the load generator does not share
 * its event loop. Started by bench/gateway.ts with the server config as JSON in argv[2];
 * prints one `READY {json}` line, and shuts down gracefully on SIGTERM.
 *
 * With the DynamoDB engine this process opens the store itself, on an SDK client that
 * also models AWS billing (bench/lib/dynamodb-billing.ts), and answers each `capacity`
 * line on stdin with one `CAPACITY {json}` line on stdout: the units DynamoDB reported
 * plus the modelled ones. The counters stay in bench code, never in the product's routes.
 */
import { createInterface } from 'node:readline';
import { startServer, type StartOptions } from '../../src/server/compose.js';
import { DynamoDbConfigSchema } from '../../src/core/config.js';
import { ServerConfigSchema, storeConfigOf } from '../../src/gateway/config.js';

const config = JSON.parse(process.argv[2] ?? '{}') as Parameters<typeof startServer>[0];
const options: StartOptions = {};
let capacity: (() => unknown) | undefined;
let closeStore: () => Promise<void> = async () => undefined;

const storeConfig = storeConfigOf(ServerConfigSchema.parse(config));
if (storeConfig.engine === 'dynamodb') {
  const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
  const { openDynamoDbStore, clientConfig } = await import('../../src/store/dynamodb/index.js');
  const { modelBilling } = await import('../lib/dynamodb-billing.js');
  const cfg = DynamoDbConfigSchema.parse(storeConfig);
  const client = new DynamoDBClient(clientConfig(cfg));
  const billed = modelBilling(client).units;
  const store = await openDynamoDbStore(cfg, { client });
  options.store = store;
  capacity = () => ({ reported: store.capacity(), billed: { ...billed }, counters: store.counters() });
  closeStore = async () => {
    await store.close();
    client.destroy();
  };
}

const server = await startServer(config, options);
process.stdout.write(`READY ${JSON.stringify({ url: server.url, wsUrl: server.wsUrl, port: server.port, store: server.postOffice.store.engine, bus: server.bus.kind })}\n`);

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'capacity') process.stdout.write(`CAPACITY ${JSON.stringify(capacity ? capacity() : null)}\n`);
});

let stopping = false;
const stop = (): void => {
  if (stopping) process.exit(1);
  stopping = true;
  server
    .close()
    .then(() => closeStore())
    .then(
      () => process.exit(0),
      () => process.exit(1),
    );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The parent died without telling us (e.g. SIGKILL): do not outlive it.
process.stdin.on('end', stop);
process.stdin.resume();
