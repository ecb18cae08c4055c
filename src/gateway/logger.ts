import { pino, type Logger } from 'pino';
import type { ServerConfig } from './config.js';

export type { Logger };

/**
 * Structured logs, one JSON line each. Bodies and credentials are never logged: the
 * redact list is a second line of defence behind not passing them in the first place.
 *
 * Without a destination, lines are written to stdout synchronously: a line is out before
 * the next statement (crash-only's last line before it exits), and when stdout's reader
 * is gone (`pobox serve | head`) the first failed write turns logging off (pino does that
 * on EPIPE). pino's default asynchronous stdout kept the lines in a buffer instead, and
 * its flush after a fatal line retried the EPIPE forever on the event loop: the process
 * then ignored SIGTERM.
 */
export function createLogger(level: ServerConfig['logLevel'], destination?: NodeJS.WritableStream): Logger {
  const opts = {
    level,
    base: { service: 'pobox' },
    redact: { paths: ['token', 'authorization', 'body', 'req.headers.authorization', 'secret'], censor: '[redacted]' },
  };
  return pino(opts, destination ?? pino.destination({ dest: 1, sync: true }));
}
