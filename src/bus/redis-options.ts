/**
 * Options of the Redis buses, validated by one schema each. A bus is named by a URL:
 *
 *   redis://[user:pass@]host:port[/db][?prefix=...]          one server (rediss:// for TLS)
 *   redis-cluster://[user:pass@]host:port,host:port[?prefix=...]  Redis Cluster seed nodes
 *                                                              (rediss-cluster:// for TLS)
 *
 * The only query parameter pobox reads is `prefix`, so a single `--bus` flag can carry a
 * deployment's (or a test's) namespace. Every other query parameter is refused: ioredis
 * would merge it into its own options as a string, silently changing how connections behave.
 */
import { z } from 'zod';
import { parseConfig } from '../core/config.js';
import { PoboxError } from '../core/errors.js';

/** Channel names are `<prefix>u:<user>`; user ids are already from a safe alphabet. */
const PREFIX_PATTERN = /^[A-Za-z0-9._:@{}-]{0,64}$/;
const PREFIX_RULE = 'prefix must be 0-64 characters of A-Z a-z 0-9 . _ : @ { } -';
/** In a cluster a `{...}` in the prefix would be a hash tag: every user on one shard. */
const CLUSTER_PREFIX_PATTERN = /^[A-Za-z0-9._:@-]{0,64}$/;
const CLUSTER_PREFIX_RULE = 'prefix must be 0-64 characters of A-Z a-z 0-9 . _ : @ - (no { }: a hash tag would put every user on one shard)';

/** Tuning both buses share. */
const tuning = {
  /** A wake-up carries the message itself when its JSON is at most this many bytes. */
  maxInlineBytes: z
    .number()
    .int()
    .min(0)
    .max(512 * 1024)
    .default(4096),
  /** Longest pause between reconnect attempts; attempts back off up to this, with jitter. */
  reconnectMaxDelayMs: z.number().int().min(10).max(60_000).default(2000),
  /** How often each connection is pinged, so a silently dead link is noticed; 0 disables. */
  pingIntervalMs: z.number().int().min(0).max(600_000).default(5000),
  /** A ping or publish unanswered for this long counts as a dead link (forces a reconnect). */
  commandTimeoutMs: z.number().int().min(10).max(60_000).default(2000),
  /** Opening the bus waits this long for every connection before giving up. */
  connectTimeoutMs: z.number().int().min(10).max(600_000).default(5000),
  /**
   * When true, opening resolves even if Redis is not reachable yet (the bus starts
   * unhealthy and sessions poll). When false (default) a bad URL fails start-up.
   */
  startDisconnected: z.boolean().default(false),
  /**
   * Wake-ups that could not be published while the publish connection was down are kept
   * (newest seq per user, without the message) and published once it is back, so a node
   * cut off from Redis alone does not leave other nodes' sessions waiting. At most this many users.
   */
  maxDeferredUsers: z.number().int().min(0).max(10_000_000).default(10_000),
  /** How long a publisher waits for other nodes to say how many devices took an ephemeral message. */
  reachTimeoutMs: z.number().int().min(1).max(60_000).default(250),
};

export const RedisBusOptionsSchema = z
  .object({
    url: z.string().regex(/^rediss?:\/\//, 'url must start with redis:// or rediss://'),
    /**
     * Namespace of every channel. Pub/sub channels are global to a Redis server (the db
     * number does not scope them), so clusters sharing one Redis need distinct prefixes.
     */
    prefix: z.string().regex(PREFIX_PATTERN, PREFIX_RULE).default('pobox:'),
    ...tuning,
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
  const prefix = prefixFromQuery(url.searchParams, input.prefix === undefined ? undefined : opts.prefix, opts.prefix, PREFIX_PATTERN, PREFIX_RULE);
  url.search = '';
  return { ...opts, prefix, connectionUrl: url.toString() };
}

/** The explicit prefix, else the URL's `prefix` parameter, else the default; anything else in the query is refused. */
function prefixFromQuery(params: URLSearchParams, explicit: string | undefined, fallback: string, pattern: RegExp, rule: string): string {
  let fromUrl: string | undefined;
  for (const [key, value] of params) {
    if (key !== 'prefix') {
      throw new PoboxError('BAD_REQUEST', `redis bus url: unknown query parameter "${key}" (only "prefix" is read)`, { field: 'url' });
    }
    if (!pattern.test(value)) throw new PoboxError('BAD_REQUEST', `redis bus url: ${rule}`, { field: 'url' });
    fromUrl = value;
  }
  return explicit ?? fromUrl ?? fallback;
}

export const RedisClusterBusOptionsSchema = z
  .object({
    url: z.string().regex(/^rediss?-cluster:\/\//, 'url must start with redis-cluster:// or rediss-cluster://'),
    /** Namespace of every channel (sharded channels are global to a cluster). */
    prefix: z.string().regex(CLUSTER_PREFIX_PATTERN, CLUSTER_PREFIX_RULE).default('pobox:'),
    /** How often the slot map is re-read, so a failover or resharding is followed. */
    slotsRefreshIntervalMs: z.number().int().min(100).max(600_000).default(2000),
    ...tuning,
  })
  .strict();

export type RedisClusterBusOptionsInput = z.input<typeof RedisClusterBusOptionsSchema>;

export interface SeedNode {
  host: string;
  port: number;
}

export interface ParsedRedisClusterBusOptions extends z.output<typeof RedisClusterBusOptionsSchema> {
  seeds: SeedNode[];
  tls: boolean;
  username: string | undefined;
  password: string | undefined;
}

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/**
 * Validate a cluster bus. `new URL` cannot read a comma-separated host list, so the
 * authority is split by hand: `[user:pass@]host:port,host:port`, then `/` or `?`.
 */
export function parseRedisClusterBusOptions(input: RedisClusterBusOptionsInput): ParsedRedisClusterBusOptions {
  const opts = parseConfig(RedisClusterBusOptionsSchema, input, 'redis cluster bus options');
  const bad = (why: string): PoboxError => new PoboxError('BAD_REQUEST', `redis cluster bus url: ${why}`, { field: 'url' });
  const m = /^(rediss?)-cluster:\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/.exec(opts.url);
  if (!m) throw bad('expected redis-cluster://host:port,host:port[?prefix=...]');
  const [, scheme, authority = '', path = '', query = ''] = m;
  if (path !== '' && path !== '/') throw bad('a cluster has no database number; the path must be empty');
  const at = authority.lastIndexOf('@');
  const hosts = at >= 0 ? authority.slice(at + 1) : authority;
  let username: string | undefined;
  let password: string | undefined;
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    const colon = userinfo.indexOf(':');
    username = decodeURIComponent(colon >= 0 ? userinfo.slice(0, colon) : userinfo) || undefined;
    password = colon >= 0 ? decodeURIComponent(userinfo.slice(colon + 1)) : undefined;
  }
  const seeds: SeedNode[] = [];
  for (const part of hosts.split(',')) {
    const hp = HOST_PORT.exec(part);
    if (!hp) throw bad(`"${part}" is not host:port (every seed node needs its port)`);
    const port = Number(hp[2]);
    if (port < 1 || port > 65535) throw bad(`port ${port} is out of range`);
    seeds.push({ host: hp[1]!.replace(/^\[|\]$/g, ''), port });
  }
  const prefix = prefixFromQuery(new URLSearchParams(query), input.prefix === undefined ? undefined : opts.prefix, opts.prefix, CLUSTER_PREFIX_PATTERN, CLUSTER_PREFIX_RULE);
  return { ...opts, prefix, seeds, tls: scheme === 'rediss', username, password };
}

/** A bus URL without its password, for logs and errors. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z-]+:\/\/[^:@/]*:)[^@/]*@/, '$1***@');
}
