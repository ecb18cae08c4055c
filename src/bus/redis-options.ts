/**
 * Options of the Redis bus, validated by one schema. A bus is named by a URL
 * (`redis://host:port/db` or `rediss://` for TLS); the only query parameter pobox reads
 * is `prefix`, so a single `--bus` flag can carry a cluster's (or a test's) namespace.
 * Every other query parameter is refused: ioredis would merge it into its own options
 * as a string, silently changing how connections behave.
 */
import { z } from 'zod';
import { parseConfig } from '../core/config.js';
import { PoboxError } from '../core/errors.js';

/** Channel names are `<prefix>u:<user>`; user ids are already from a safe alphabet. */
const PREFIX_PATTERN = /^[A-Za-z0-9._:@{}-]{0,64}$/;

export const RedisBusOptionsSchema = z
  .object({
    url: z
      .string()
      .regex(/^rediss?:\/\//, 'url must start with redis:// or rediss://'),
    /**
     * Namespace of every channel. Pub/sub channels are global to a Redis server (the db
     * number does not scope them), so clusters sharing one Redis need distinct prefixes.
     */
    prefix: z.string().regex(PREFIX_PATTERN, 'prefix must be 0-64 characters of A-Z a-z 0-9 . _ : @ { } -').default('pobox:'),
    /** A wake-up carries the message itself when its JSON is at most this many bytes. */
    maxInlineBytes: z.number().int().min(0).max(512 * 1024).default(4096),
    /** Longest pause between reconnect attempts; attempts back off up to this, with jitter. */
    reconnectMaxDelayMs: z.number().int().min(10).max(60_000).default(2000),
    /** How often each connection is pinged, so a silently dead link is noticed; 0 disables. */
    pingIntervalMs: z.number().int().min(0).max(600_000).default(5000),
    /** A ping or publish unanswered for this long counts as a dead link (forces a reconnect). */
    commandTimeoutMs: z.number().int().min(10).max(60_000).default(2000),
    /** `openRedisBus` waits this long for both connections before giving up. */
    connectTimeoutMs: z.number().int().min(10).max(600_000).default(5000),
    /**
     * When true, `openRedisBus` resolves even if Redis is not reachable yet (the bus
     * starts unhealthy and sessions poll). When false (default) a bad URL fails start-up.
     */
    startDisconnected: z.boolean().default(false),
    /**
     * Wake-ups that could not be published while the publish connection was down are kept
     * (newest seq per user, without the message) and published once it is back, so a node
     * cut off from Redis alone does not leave other nodes' sessions waiting. At most this many users.
     */
    /** How long a publisher waits for other nodes to say how many devices took an ephemeral message. */
    reachTimeoutMs: z.number().int().min(1).max(60_000).default(250),
    maxDeferredUsers: z.number().int().min(0).max(10_000_000).default(10_000),
  })
  .strict();

export type RedisBusOptions = z.output<typeof RedisBusOptionsSchema>;
export type RedisBusOptionsInput = z.input<typeof RedisBusOptionsSchema>;

export interface ParsedRedisBusOptions extends RedisBusOptions {
  /** The URL handed to ioredis: the same as `url` without pobox's query parameters. */
  connectionUrl: string;
}

/** Validate options; a `prefix` in the URL's query is used when no explicit prefix is given. */
export function parseRedisBusOptions(input: RedisBusOptionsInput): ParsedRedisBusOptions {
  const opts = parseConfig(RedisBusOptionsSchema, input, 'redis bus options');
  let url: URL;
  try {
    url = new URL(opts.url);
  } catch (err) {
    throw new PoboxError('BAD_REQUEST', `redis bus url is not a valid URL: ${opts.url}`, { field: 'url', cause: err });
  }
  if (!url.hostname) throw new PoboxError('BAD_REQUEST', 'redis bus url must name a host', { field: 'url' });
  const db = url.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d{1,5}$/.test(db)) {
    throw new PoboxError('BAD_REQUEST', `redis bus url path must be a database number, got "${url.pathname}"`, { field: 'url' });
  }
  let prefix = opts.prefix;
  for (const [key, value] of url.searchParams) {
    if (key !== 'prefix') {
      throw new PoboxError('BAD_REQUEST', `redis bus url: unknown query parameter "${key}" (only "prefix" is read)`, { field: 'url' });
    }
    if (!PREFIX_PATTERN.test(value)) {
      throw new PoboxError('BAD_REQUEST', 'redis bus url: prefix must be 0-64 characters of A-Z a-z 0-9 . _ : @ { } -', { field: 'url' });
    }
    if (input.prefix === undefined) prefix = value;
  }
  url.search = '';
  return { ...opts, prefix, connectionUrl: url.toString() };
}
