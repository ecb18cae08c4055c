/**
 * Crash-only: a promise nobody handled or an exception nobody caught means the process is
 * in a state nobody reasoned about. Log it and exit non-zero, so a supervisor starts a
 * clean process; the store's crash guarantees (what was acknowledged is on disk) make a
 * restart lose nothing. Keeping such a process alive is how a half-broken node keeps
 * taking traffic.
 */
import type { Logger } from '../gateway/logger.js';

/** Exit code after an unhandled error (EX_SOFTWARE from sysexits.h). */
export const CRASH_EXIT_CODE = 70;

/**
 * A rejection a dependency leaves unhandled although its failure also reaches the caller
 * that is waiting for it: returns why it is safe to go on, or undefined to crash.
 */
export type KnownLeak = (err: unknown) => string | undefined;

export function installCrashOnly(log: () => Logger | undefined, opts: { knownLeak?: KnownLeak; exit?: (code: number) => never } = {}): () => void {
  const exit = opts.exit ?? process.exit;
  const die = (kind: string, err: unknown): void => {
    const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
    const l = log();
    // createLogger's stdout destination writes synchronously, so the line is out before we exit.
    if (l) l.fatal({ err: text }, `${kind}; exiting so a supervisor restarts a clean process`);
    else process.stderr.write(`pobox: ${kind}: ${text}\n`);
    exit(CRASH_EXIT_CODE);
  };
  const onRejection = (err: unknown): void => {
    const known = opts.knownLeak?.(err);
    if (known === undefined) return die('unhandled rejection', err);
    log()?.warn({ err: err instanceof Error ? err.message : String(err), known }, 'unhandled rejection of a known library leak; the failure was answered to its caller');
  };
  const onException = (err: Error): void => die('uncaught exception', err);
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  };
}
