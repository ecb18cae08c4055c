/**
 * Deadlines that keep slow or unfinished requests from holding connections (slowloris):
 * the header block must arrive within `headersTimeoutMs`, the whole request with its body
 * within `requestTimeoutMs`, and an idle keep-alive connection is closed after
 * `keepAliveTimeoutMs`. Node checks the first two on a timer (connectionsCheckingInterval,
 * 30 s by default, which would let a request overstay its deadline by up to 30 s): here it
 * runs ten times per header deadline, at most once a second. A request over its deadline
 * is answered 408 with the JSON error body (http-client-error.ts) and closed.
 */
import type { ServerOptions } from 'node:http';
import type { HttpTimeouts } from './config.js';

export function httpServerOptions(t: HttpTimeouts): ServerOptions {
  return {
    headersTimeout: t.headersTimeoutMs,
    requestTimeout: t.requestTimeoutMs,
    keepAliveTimeout: t.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(t.headersTimeoutMs / 10))),
  };
}
