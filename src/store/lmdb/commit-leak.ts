/**
 * Kept apart from the engine so `pobox serve` can recognise the leak without loading lmdb
 * (a DynamoDB node never does).
 */
/**
 * True for the one rejection lmdb-js leaves unhandled by design of its event-turn batching:
 * when a commit fails (a full disk), the promise it made for the batch's start (write.js,
 * `writeBatchStart()`, return value dropped) is rejected with "Commit failed" and nobody
 * can reach it. The same failure is delivered to every caller whose write was in that
 * commit (answered UNAVAILABLE), so the process-wide handler may let this one pass.
 */
export function isLmdbBatchCommitLeak(err: unknown): boolean {
  if (!(err instanceof Error) || !/lmdb[\\/]write\.js/.test(err.stack ?? '')) return false;
  if (err.message.startsWith('Commit failed (see commitError') && /rejectCommit/.test(err.stack ?? '')) return true;
  return isCommitErrorDetail(err);
}

/**
 * The second promise of the same failure: every "Commit failed" error carries the details
 * as `error.commitError`, a promise that lmdb-js rejects with the OS error of the commit
 * (EIO, ENOSPC: an Error with a numeric errno `code`, thrown by its `lmdbError`) and that
 * no caller awaits. Seen on a full tmpfs as "Input/output error" (code 5).
 */
function isCommitErrorDetail(err: Error): boolean {
  const code = (err as Error & { code?: unknown }).code;
  return typeof code === 'number' && code > 0 && !err.message.startsWith('Commit failed');
}
