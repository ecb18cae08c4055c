/**
 * `pobox serve`: the server in one process (HTTP API + WebSocket on one port). Config
 * comes from flags, environment variables and an optional JSON file (--config), see
 * src/gateway/config.ts. SIGTERM/SIGINT shut down gracefully and exit 0.
 */
import type { Command } from 'commander';
import { loadServerConfig, type ServerFlags } from '../../gateway/config.js';
import type { Logger } from '../../gateway/logger.js';
import { startServer } from '../../server/compose.js';
import { isLmdbBatchCommitLeak } from '../../store/lmdb/commit-leak.js';
import { survivePipeReadersGone } from '../closed-output.js';
import { installCrashOnly } from '../crash-only.js';

export function addServerConfigOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'JSON config file (env POBOX_CONFIG)')
    .option('--data-dir <dir>', 'data directory: embedded store and generated secret (env POBOX_DATA_DIR, default ./.pobox-data)')
    .option('--store <engine>', 'lmdb (default) or dynamodb (env POBOX_STORE)')
    .option('--dynamodb-table <name>', 'DynamoDB table (env POBOX_DYNAMODB_TABLE)')
    .option('--dynamodb-endpoint <url>', 'DynamoDB endpoint, e.g. DynamoDB Local (env POBOX_DYNAMODB_ENDPOINT)')
    .option('--dynamodb-region <region>', 'DynamoDB region (env POBOX_DYNAMODB_REGION)');
}

export function registerServe(program: Command): void {
  addServerConfigOptions(
    program
      .command('serve')
      .description('run the pobox server (HTTP API and WebSocket delivery on one port)')
      .option('--port <port>', 'port to listen on; 0 picks a free one (env PORT, default 8080)')
      .option('--host <host>', 'address to bind (env POBOX_HOST, default 127.0.0.1)')
      .option('--bus <spec>', 'memory (default), redis://host:port or redis-cluster://host:port,host:port (env POBOX_BUS)')
      .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (env POBOX_LOG_LEVEL)')
      .option('--demo', 'serve the demo page at / and mint demo tokens (env POBOX_DEMO; default: on for lmdb on a loopback host)')
      .option('--no-demo', 'never serve the demo page')
      .option('--wakeup-url <url>', 'POST {user, devices} here when a message is stored for a user with no connected device (env POBOX_WAKEUP_URL)'),
  ).action(async (flags: ServerFlags) => {
    // Crash-only (crash-only.ts): an unhandled error is logged and the process exits non-zero.
    let logger: Logger | undefined;
    survivePipeReadersGone();
    installCrashOnly(() => logger, { knownLeak: (err) => (isLmdbBatchCommitLeak(err) ? 'lmdb-js batch commit promise (src/store/lmdb/index.ts)' : undefined) });
    const config = loadServerConfig({ flags });
    const server = await startServer(config);
    const log = (logger = server.log);
    if (server.secretCreated) {
      const dirFlag = flags.dataDir ? ` --data-dir ${flags.dataDir}` : '';
      process.stderr.write(
        `pobox: created a JWT secret in ${server.secretFile} (mode 0600).\n` + `pobox: mint a user token with:  pobox token --user alice --device phone${dirFlag}\n`,
      );
    }
    process.stderr.write(`pobox: listening on ${server.url} (WebSocket ${server.wsUrl})\n`);
    if (server.ops.demo) process.stderr.write(`pobox: demo page at ${server.url}/ (demo mode mints tokens for anyone; --no-demo turns it off)\n`);
    await new Promise<void>((resolve) => {
      let stopping = false;
      const stop = (signal: NodeJS.Signals): void => {
        if (stopping) {
          log.warn({ signal }, 'second signal: exiting now');
          process.exit(1);
        }
        stopping = true;
        log.info({ signal }, 'signal received');
        server.close().then(resolve, (err: unknown) => {
          log.error({ err: String(err) }, 'shutdown failed');
          process.exitCode = 1;
          resolve();
        });
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
  });
}
