/**
 * `pobox serve`: the server in one process (HTTP API + WebSocket on one port). Config
 * comes from flags, environment variables and an optional JSON file (--config), see
 * src/server/config.ts. SIGTERM/SIGINT shut down gracefully and exit 0.
 */
import type { Command } from 'commander';
import type { Logger } from '../../gateway/logger.js';
import { startServer } from '../../server/compose.js';
import { addServerOptions, serverConfigOf } from '../../server/config.js';
import { answeredCommitLeak } from '../../store/lmdb/commit-leak.js';
import { survivePipeReadersGone } from '../closed-output.js';
import { isStoreWorkerDeath } from '../../store/worker/host.js';
import { CRASH_EXIT_CODE, installCrashOnly } from '../crash-only.js';

export function registerServe(program: Command): void {
  addServerOptions(program.command('serve').description('run the pobox server (HTTP API and WebSocket delivery on one port)'), 'serve').action(
    async (_flags: unknown, cmd: Command) => {
      // Crash-only (crash-only.ts): an unhandled error is logged and the process exits non-zero.
      let logger: Logger | undefined;
      survivePipeReadersGone();
      installCrashOnly(() => logger, { knownLeak: answeredCommitLeak });
      const config = serverConfigOf(cmd);
      const server = await startServer(config);
      const log = (logger = server.log);
      // A store worker that died took the engine's memory with it (src/store/worker/host.ts):
      // as after an uncaught error, exit so a supervisor starts a clean process, which
      // replays the engine from disk.
      server.postOffice.events.on('backgroundFailure', ({ err }) => {
        if (!isStoreWorkerDeath(err)) return;
        log.fatal({ err: (err as Error).message }, 'the store worker died; exiting so a supervisor restarts a clean process');
        process.exit(CRASH_EXIT_CODE);
      });
      if (server.secretCreated) {
        const dirFlag = cmd.getOptionValueSource('dataDir') === 'cli' ? ` --data-dir ${String(cmd.getOptionValue('dataDir'))}` : '';
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
    },
  );
}
