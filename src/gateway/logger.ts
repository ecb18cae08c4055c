import { pino, type Logger } from 'pino';
import type { ServerConfig } from './config.js';

export type { Logger };

/**
 * Structured logs, one JSON line each. Bodies and credentials are never logged: the
 * redact list is a second line of defence behind not passing them in the first place.
 */
export function createLogger(level: ServerConfig['logLevel'], destination?: NodeJS.WritableStream): Logger {
  const opts = {
    level,
    base: { service: 'pobox' },
    redact: { paths: ['token', 'authorization', 'body', 'req.headers.authorization', 'secret'], censor: '[redacted]' },
  };
  return destination ? pino(opts, destination) : pino(opts);
}
