/**
 * The server's configuration: one zod schema. Validated once at start; a bad value is a
 * BAD_REQUEST naming the field (e.g. `session.windowMessages`). Where the values come
 * from (flags, environment variables, a JSON config file, these defaults) is
 * src/server/config.ts.
 *
 * `pobox serve`, `pobox token`, tests and benchmarks all go through this schema, so
 * a value means the same thing wherever it is given.
 */
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { checkBusSpec } from '../bus/open.js';
import { KiB, MiB, PostOfficeConfigSchema, StoreConfigSchema } from '../core/config.js';
import { PoboxError } from '../core/errors.js';
import { WakeupHookConfigSchema } from '../postoffice/wakeup-hook.js';

export const ApiKeySchema = z
  .object({
    /** The key as the backend sends it (`Authorization: Bearer <key>`). At least 24 characters. */
    key: z.string().min(24, 'API keys must be at least 24 characters'),
    /** A name for logs; the key itself is never logged. */
    name: z.string().min(1).max(64).default('backend'),
    scopes: z.array(z.enum(['send', 'admin'])).min(1),
    /** Sends with this key are never refused for a sender's share of a mailbox (fair quotas, SENDER_QUOTA). */
    senderQuotaExempt: z.boolean().default(false),
  })
  .strict();
export type ApiKeyConfig = z.output<typeof ApiKeySchema>;

export const AuthConfigSchema = z
  .object({
    /** HS256 shared secrets; the first signs (pobox token), every one verifies (rotation). */
    secrets: z.array(z.string().min(32, 'a JWT secret must be at least 32 characters')).default([]),
    /** An EdDSA (Ed25519) public key, as a JWK (JSON text) or SPKI PEM. Verifies tokens minted elsewhere. */
    publicKey: z.string().min(1).optional(),
    /** When set, tokens must carry this `iss` / `aud`. */
    issuer: z.string().min(1).optional(),
    audience: z.string().min(1).optional(),
    /** Tolerated clock difference when checking `exp`, in seconds. */
    clockToleranceSeconds: z.number().int().min(0).max(300).default(5),
    apiKeys: z.array(ApiKeySchema).default([]),
  })
  .strict();
export type AuthConfig = z.output<typeof AuthConfigSchema>;

export const SessionConfigSchema = z
  .object({
    /**
     * Most unacked messages in flight per connection. Chosen with the SDK's ack cadence
     * (an ack per quarter window and at the end of each burst): a backlog of up to this
     * many goes out without waiting for any ack, and a longer one never stalls on acks.
     */
    windowMessages: z.number().int().min(1).max(100_000).default(1024),
    /** Most unacked body bytes in flight per connection (one message is always allowed). */
    windowBytes: z
      .number()
      .int()
      .min(1)
      .default(1 * MiB),
    /** Messages read from the store per page. */
    pageSize: z.number().int().min(1).max(10_000).default(256),
    /** Stop writing to a socket whose send buffer holds more than this; resume when it drains. */
    maxBufferedBytes: z
      .number()
      .int()
      .min(1024)
      .default(1 * MiB),
    /** ws-level ping interval; a connection silent for two intervals is closed. */
    heartbeatMs: z.number().int().min(100).default(30_000),
    /** The hello frame must arrive within this time. */
    helloTimeoutMs: z.number().int().min(100).default(10_000),
    /** While the bus is unhealthy, sessions read the store this often. */
    pollIntervalMs: z.number().int().min(10).default(1000),
    /**
     * Every live session also reads its mailbox this often without a wake-up, so a lost
     * wake-up delays a delivery by at most this (plus one read). 0 turns it off.
     */
    safetyPollMs: z.number().int().min(0).default(20_000),
    /** Wake-ups carry the message itself when its body is at most this many bytes. */
    wakeMessageMaxBytes: z
      .number()
      .int()
      .min(0)
      .default(4 * KiB),
  })
  .strict();
export type SessionConfig = z.output<typeof SessionConfigSchema>;

const RateSchema = z
  .object({
    perSecond: z.number().min(0.01),
    burst: z.number().int().min(1),
  })
  .strict();

export const GatewayLimitsSchema = z
  .object({
    /** Largest WebSocket message accepted; larger closes the connection with 1009. */
    maxFrameBytes: z
      .number()
      .int()
      .min(1024)
      .default(512 * KiB),
    /** Largest HTTP request body accepted (413 PAYLOAD_TOO_LARGE beyond). */
    maxHttpBodyBytes: z
      .number()
      .int()
      .min(1024)
      .default(512 * KiB),
    /** Token bucket for send frames on one connection. */
    sendRate: RateSchema.default({ perSecond: 1000, burst: 2000 }),
    /** Token bucket for WebSocket connection attempts per remote address. */
    connectRate: RateSchema.default({ perSecond: 20, burst: 100 }),
    /** Invalid frames tolerated on one connection before it is closed with 4008. */
    maxInvalidFrames: z.number().int().min(1).default(10),
  })
  .strict();
export type GatewayLimits = z.output<typeof GatewayLimitsSchema>;

export const HttpTimeoutsSchema = z
  .object({
    /** The request line and headers must arrive within this (slowloris); 408 and closed after. */
    headersTimeoutMs: z.number().int().min(10).max(600_000).default(10_000),
    /** The whole request, body included, must arrive within this; 408 and closed after. */
    requestTimeoutMs: z.number().int().min(10).max(3_600_000).default(30_000),
    /** An idle keep-alive connection is closed after this. */
    keepAliveTimeoutMs: z.number().int().min(10).max(600_000).default(5000),
  })
  .strict()
  .refine((t) => t.headersTimeoutMs <= t.requestTimeoutMs, { message: 'headersTimeoutMs must not exceed requestTimeoutMs', path: ['headersTimeoutMs'] });
export type HttpTimeouts = z.output<typeof HttpTimeoutsSchema>;

export const ServerConfigSchema = z
  .object({
    host: z.string().min(1).default('127.0.0.1'),
    /** 0 picks a free port. */
    port: z.number().int().min(0).max(65535).default(8080),
    /** Holds the embedded store (`<dataDir>/lmdb`) and the generated JWT secret. */
    dataDir: z.string().min(1).default('./.pobox-data'),
    store: z.enum(['lmdb', 'dynamodb']).default('lmdb'),
    /**
     * Run the store engine in a worker thread (src/store/worker/host.ts), so the engine's
     * CPU and the sockets' share the machine's cores. Default and measurements: README
     * (configuration).
     */
    storeWorker: z.boolean().default(false),
    dynamodb: z
      .object({
        table: z.string().min(1).optional(),
        endpoint: z.url().optional(),
        region: z.string().min(1).optional(),
      })
      .strict()
      .default({}),
    /** `memory` (single node), a redis:// URL (one Redis) or a redis-cluster:// URL (Redis Cluster); see src/bus/open.ts. */
    bus: z
      .string()
      .superRefine((spec, ctx) => {
        try {
          checkBusSpec(spec);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err) });
        }
      })
      .default('memory'),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    auth: AuthConfigSchema.default(() => AuthConfigSchema.parse({})),
    session: SessionConfigSchema.default(() => SessionConfigSchema.parse({})),
    limits: GatewayLimitsSchema.default(() => GatewayLimitsSchema.parse({})),
    postOffice: PostOfficeConfigSchema.default(() => PostOfficeConfigSchema.parse({})),
    /** HTTP deadlines (src/gateway/http-timeouts.ts). */
    http: HttpTimeoutsSchema.default({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5000 }),
    /** GET /readyz (src/gateway/readiness.ts). */
    readiness: z
      .object({
        /** /readyz answers within this, 503 when the store has not answered by then. */
        timeoutMs: z.number().int().min(10).max(60_000).default(2000),
        /** Store writes failing this many times in a row make /readyz probe a write and answer 503 while it fails. */
        writeFailures: z.number().int().min(1).max(1000).default(3),
      })
      .strict()
      .default({ timeoutMs: 2000, writeFailures: 3 }),
    /** Longest a graceful shutdown waits for in-flight work before closing anyway. */
    shutdownTimeoutMs: z.number().int().min(0).default(10_000),
    /** Serve the demo page at / and mint demo tokens. Unset: on for lmdb on a loopback host only. */
    demo: z.boolean().optional(),
    /** Store delivery receipts for sends with `receipt: true` (src/postoffice/receipts.ts). */
    receipts: z.boolean().default(true),
    /** Offline wake-up webhook (src/postoffice/wakeup-hook.ts); off unless `url` is set. */
    wakeupHook: WakeupHookConfigSchema.optional(),
    /** Also export Node process metrics (CPU, memory, event loop) at /metrics. */
    processMetrics: z.boolean().default(true),
  })
  .strict();
export type ServerConfig = z.output<typeof ServerConfigSchema>;
export type ServerConfigInput = z.input<typeof ServerConfigSchema>;

/** The store config `openStore()` takes, derived from the server config. */
export function storeConfigOf(cfg: ServerConfig): z.input<typeof StoreConfigSchema> {
  if (cfg.store === 'dynamodb') {
    if (!cfg.dynamodb.table) {
      throw new PoboxError('BAD_REQUEST', 'invalid server config:\n  dynamodb.table: required when store is dynamodb (--dynamodb-table)', { field: 'dynamodb.table' });
    }
    return {
      engine: 'dynamodb',
      table: cfg.dynamodb.table,
      region: cfg.dynamodb.region ?? 'us-east-1',
      ...(cfg.dynamodb.endpoint ? { endpoint: cfg.dynamodb.endpoint } : {}),
      ...(cfg.storeWorker ? { worker: true } : {}),
    };
  }
  return { engine: 'lmdb', path: join(resolve(cfg.dataDir), 'lmdb'), ...(cfg.storeWorker ? { worker: true } : {}) };
}
