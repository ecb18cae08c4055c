/**
 * Which DynamoDB failures are worth another try, and how long to wait: exponential
 * backoff with full jitter (a random wait between 0 and base * 2^attempt, capped), so
 * many nodes retrying the same hot mailbox spread out instead of colliding again.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 10, baseDelayMs: 20, maxDelayMs: 2000 };

const RETRYABLE_NAMES = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'RequestLimitExceeded',
  'InternalServerError',
  'InternalFailure',
  'ServiceUnavailable',
  'TransactionInProgressException',
  'LimitExceededException',
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
]);
const RETRYABLE_NET = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'ECONNABORTED', 'UND_ERR_SOCKET']);

interface AwsLikeError {
  name?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
  CancellationReasons?: Array<{ Code?: string }>;
}

/** Transient: throttling, 5xx, a network fault, or a transaction that lost a race. */
export function isTransient(err: unknown): boolean {
  const e = err as AwsLikeError;
  if (!e || typeof e !== 'object') return false;
  if (e.name && RETRYABLE_NAMES.has(e.name)) return true;
  if (e.code && RETRYABLE_NET.has(e.code)) return true;
  if (e.$retryable) return true;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 500) return true;
  if (e.name === 'TransactionCanceledException') {
    // Retry when the only reasons are conflicts or throttling; a failed condition means
    // our read is stale, which the caller handles by reading again.
    return (e.CancellationReasons ?? []).some((r) => r.Code === 'TransactionConflict' || r.Code === 'ThrottlingError' || r.Code === 'ProvisionedThroughputExceeded');
  }
  return false;
}

/** A failed condition on an item we read first: someone else wrote it; read again. */
export function isStale(err: unknown): boolean {
  const e = err as AwsLikeError;
  if (!e || typeof e !== 'object') return false;
  if (e.name === 'ConditionalCheckFailedException') return true;
  if (e.name === 'TransactionCanceledException') return (e.CancellationReasons ?? []).some((r) => r.Code === 'ConditionalCheckFailed');
  return false;
}

export function backoffMs(attempt: number, policy: RetryPolicy): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.random() * ceiling;
}

export function pause(attempt: number, policy: RetryPolicy): Promise<void> {
  return sleep(backoffMs(attempt, policy));
}
