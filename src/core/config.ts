import { z } from 'zod';
import { parseInput } from './validate.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const DAY_SECONDS = 24 * 60 * 60;

/** Per-mailbox and per-message limits. Defaults are the ones the README and docs/protocol.md promise. */
export const LimitsSchema = z
  .object({
    maxBodyBytes: z
      .number()
      .int()
      .min(1)
      .max(16 * MiB)
      .default(64 * KiB),
    maxMailboxMessages: z.number().int().min(1).max(100_000_000).default(10_000),
    maxMailboxBytes: z
      .number()
      .int()
      .min(1)
      .default(64 * MiB),
    /**
     * Fair quotas: the share of a mailbox's message and byte quotas that one sender's
     * messages (stored, not yet acked by every device) may take. A sender at its share
     * is refused with SENDER_QUOTA while other senders still reach the mailbox. 1 turns
     * it off; API keys with `senderQuotaExempt` and receipts are never held to it.
     */
    senderShare: z.number().gt(0).max(1).default(0.25),
    maxDevicesPerUser: z.number().int().min(1).max(1000).default(32),
    maxPageSize: z.number().int().min(1).max(10_000).default(1000),
    /** Most recipients of one group send (`to` as a list). */
    maxRecipients: z.number().int().min(1).max(10_000).default(1000),
  })
  .strict();
export type Limits = z.output<typeof LimitsSchema>;

/** One sender's share of a mailbox in messages and bytes (at least one message), or undefined when the share is 1. */
export function senderLimits(l: Pick<Limits, 'maxMailboxMessages' | 'maxMailboxBytes' | 'senderShare'>): { maxSenderMessages: number; maxSenderBytes: number } | undefined {
  if (l.senderShare >= 1) return undefined;
  return { maxSenderMessages: Math.max(1, Math.floor(l.maxMailboxMessages * l.senderShare)), maxSenderBytes: Math.max(1, Math.floor(l.maxMailboxBytes * l.senderShare)) };
}

export const RetentionSchema = z
  .object({
    defaultTtlSeconds: z
      .number()
      .int()
      .min(1)
      .default(30 * DAY_SECONDS),
    maxTtlSeconds: z
      .number()
      .int()
      .min(1)
      .default(30 * DAY_SECONDS),
    /** How often the sweeper deletes expired messages; 0 disables it. */
    sweepIntervalMs: z.number().int().min(0).default(60_000),
    /** Most messages one sweep pass deletes before yielding. */
    sweepBatch: z.number().int().min(1).max(100_000).default(1000),
  })
  .strict()
  .refine((r) => r.defaultTtlSeconds <= r.maxTtlSeconds, {
    message: 'defaultTtlSeconds must not exceed maxTtlSeconds',
    path: ['defaultTtlSeconds'],
  });
export type Retention = z.output<typeof RetentionSchema>;

export const PostOfficeConfigSchema = z
  .object({
    limits: LimitsSchema.default(() => LimitsSchema.parse({})),
    retention: RetentionSchema.default(() => RetentionSchema.parse({})),
    /** Most sends committed in one store transaction (group commit). */
    maxBatch: z.number().int().min(1).max(10_000).default(1000),
    /**
     * Longest any store call may take before its caller is answered UNAVAILABLE (a frozen
     * disk or an unreachable DynamoDB fails requests fast instead of holding them).
     */
    storeTimeoutMs: z.number().int().min(10).max(600_000).default(10_000),
  })
  .strict();
export type PostOfficeConfig = z.output<typeof PostOfficeConfigSchema>;
export type PostOfficeConfigInput = z.input<typeof PostOfficeConfigSchema>;

/** Validate a configuration object; the error names the bad field. */
export function parseConfig<S extends z.ZodType>(schema: S, input: unknown, source = 'config'): z.output<S> {
  return parseInput(schema, input, { what: source, allIssues: true });
}

/** Which engine holds the mailboxes. The embedded engine needs nothing else. */
export const LmdbConfigSchema = z
  .object({
    engine: z.literal('lmdb'),
    /** Directory of the LMDB environment. */
    path: z.string().min(1),
    /**
     * Run the engine in a worker thread (src/store/worker/host.ts): its CPU moves off the
     * event loop that serves the sockets, at the cost of one message each way per call.
     */
    worker: z.boolean().optional(),
  })
  .strict();

export const DynamoDbConfigSchema = z
  .object({
    engine: z.literal('dynamodb'),
    table: z.string().regex(/^[A-Za-z0-9_.-]{3,255}$/, 'table must be 3-255 characters of A-Z a-z 0-9 _ . -'),
    region: z.string().min(1).default('us-east-1'),
    /** Override for DynamoDB Local or a DynamoDB-compatible store (e.g. ScyllaDB Alternator). */
    endpoint: z.url().optional(),
    /** Partitions of the sweeper's expiry index; fixed for the life of the table. */
    sweepShards: z.number().int().min(1).max(256).default(16),
    /** Native TTL deletes this long after expiry, so the sweeper (which keeps quotas right) normally gets there first. */
    ttlGraceSeconds: z
      .number()
      .int()
      .min(0)
      .max(365 * DAY_SECONDS)
      .default(DAY_SECONDS),
    /** Attempts per request (throttling, 5xx, conflicts) before a send fails with UNAVAILABLE. */
    maxAttempts: z.number().int().min(1).max(50).default(10),
    /**
     * A request with no answer after this long is abandoned and counts as a fault.
     * Default 5 s, or 30 s when the endpoint is a loopback address (DynamoDB Local on a
     * busy developer machine answers far slower than the service).
     */
    requestTimeoutMs: z.number().int().min(50).max(120_000).optional(),
    /** Opening a connection to DynamoDB may take this long. */
    connectTimeoutMs: z.number().int().min(50).max(60_000).default(2_000),
    /** Faults of one request are retried for at most this long (and maxAttempts), then UNAVAILABLE; default twice the request timeout. */
    faultBudgetMs: z.number().int().min(0).max(300_000).optional(),
    /**
     * Run the engine in a worker thread (src/store/worker/host.ts): the AWS SDK's
     * per-request CPU moves off the event loop that serves the sockets, at the cost of
     * one message each way per call.
     */
    worker: z.boolean().optional(),
  })
  .strict();

export const StoreConfigSchema = z.discriminatedUnion('engine', [LmdbConfigSchema, DynamoDbConfigSchema]);
export type StoreConfig = z.output<typeof StoreConfigSchema>;
export type LmdbConfig = z.output<typeof LmdbConfigSchema>;
export type DynamoDbConfig = z.output<typeof DynamoDbConfigSchema>;
