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
  return err instanceof Error && err.message.startsWith('Commit failed (see commitError') && /lmdb[\\/]write\.js/.test(err.stack ?? '') && /rejectCommit/.test(err.stack ?? '');
}
