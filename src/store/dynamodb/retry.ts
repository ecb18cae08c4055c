/**
 * Which DynamoDB failures are worth another try, and how long to wait: exponential
 * backoff with full jitter (a random wait between 0 and base * 2^attempt, capped), so
 * many nodes retrying the same hot mailbox spread out instead of colliding again.
 *
 * Two kinds of retry, two limits. Faults (throttling, 5xx, network) get `maxAttempts`:
 * if DynamoDB is down, fail fast with UNAVAILABLE. Contention (a transaction conflict,
 * or a conditional write that lost a race to another writer of the same mailbox) is the
 * normal price of a busy mailbox and means someone else made progress, so it gets a
 * time budget (`contentionBudgetMs`) instead of a small count.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffDelay } from '../../core/backoff.js';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** How long one operation may keep retrying after conflicts and lost races. */
  contentionBudgetMs: number;
  /**
   * How long one request may keep being retried after faults (throttling, 5xx, network,
   * timeouts), whatever `maxAttempts` still allows: a stalled store answers UNAVAILABLE
   * within about this plus one request timeout, instead of hanging.
   */
  faultBudgetMs: number;
  /** Each request is abandoned (and counts as a fault) after this long without an answer. */
  requestTimeoutMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 10,
  baseDelayMs: 20,
  maxDelayMs: 2000,
  contentionBudgetMs: 10_000,
  faultBudgetMs: 10_000,
  requestTimeoutMs: 5_000,
};

/** Contention backoff stays short (at most base * 2^4): the winner is done within milliseconds. */
const CONTENTION_MAX_EXPONENT = 4;

const RETRYABLE_NAMES = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'RequestLimitExceeded',
  'InternalServerError',
  'InternalFailure',
  'ServiceUnavailable',
  'TransactionInProgressException',
  'TransactionConflictException',
  'LimitExceededException',
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  // Our own per-request deadline (an AbortSignal) and the HTTP handler's socket timeouts.
  'AbortError',
  'RequestAbortedError',
]);
const RETRYABLE_NET = new Set(['ETIMEDOUT', 'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'ECONNABORTED', 'UND_ERR_SOCKET']);

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

/**
 * Another request was writing the same item at the same moment (TransactionConflict):
 * nothing was applied and our conditions may still hold, so the very same request is
 * sent again, without reading anything again.
 */
export function isConflict(err: unknown): boolean {
  const e = err as AwsLikeError;
  if (!e || typeof e !== 'object') return false;
  if (e.name === 'TransactionConflictException') return true;
  if (e.name !== 'TransactionCanceledException') return false;
  const codes = (e.CancellationReasons ?? []).map((r) => r.Code);
  return codes.includes('TransactionConflict') && !codes.includes('ConditionalCheckFailed');
}

/** Indexes of the transaction items whose condition failed (empty when unknown). */
export function failedConditions(err: unknown): number[] {
  const e = err as AwsLikeError;
  const out: number[] = [];
  (e?.CancellationReasons ?? []).forEach((r, i) => {
    if (r.Code === 'ConditionalCheckFailed') out.push(i);
  });
  return out;
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
  return backoffDelay(attempt, { baseMs: policy.baseDelayMs, maxMs: policy.maxDelayMs }).delayMs;
}

export function pause(attempt: number, policy: RetryPolicy): Promise<void> {
  return sleep(backoffMs(attempt, policy));
}

/** The pause before another try after contention. */
export function contentionPause(attempt: number, policy: RetryPolicy): Promise<void> {
  return sleep(backoffMs(Math.min(attempt, CONTENTION_MAX_EXPONENT), policy));
}

/** Is there time left in the fault budget of a request first sent at `startedAt`? */
export function withinFaultBudget(startedAt: number, policy: RetryPolicy): boolean {
  return Date.now() - startedAt < policy.faultBudgetMs;
}

/** Is there time left in the contention budget of an operation started at `startedAt`? */
export function withinBudget(startedAt: number, policy: RetryPolicy): boolean {
  return Date.now() - startedAt < policy.contentionBudgetMs;
}
