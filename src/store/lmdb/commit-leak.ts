/**
 * How a failed lmdb-js commit (a full disk, EIO) is answered, in one place: the engine
 * calls `answerCommitFailure` where it awaits the commit, and `pobox serve`'s crash-only
 * handler asks `answeredCommitLeak` about a rejection nobody handled. Kept apart from the
 * engine so serve can ask without loading lmdb (a DynamoDB node never does).
 *
 * lmdb-js rejects every promise of a failed commit with an Error("Commit failed (see
 * commitError for details)") whose `commitError` is one promise per commit, rejected with
 * the OS error. Two of those promises reach no caller by design of its event-turn batching:
 * the detail promise itself (nobody awaits it unless we do) and the batch's start promise
 * (write.js, `writeBatchStart()`, return value dropped). The engine handles the first where
 * it awaits the commit; the second is known by identity: it carries the same `commitError`
 * as a failure the engine has answered to its caller (UNAVAILABLE), so no stack or message
 * is matched.
 */

/** Detail promises of commits the engine has awaited and answered. */
const answered = new WeakSet<Promise<unknown>>();

function commitErrorOf(err: unknown): Promise<unknown> | undefined {
  const detail = (err as { commitError?: unknown } | null | undefined)?.commitError;
  return detail instanceof Promise ? detail : undefined;
}

/** Where the engine awaits a commit that failed: handle its detail promise and remember the commit as answered. */
export function answerCommitFailure(err: unknown): void {
  const detail = commitErrorOf(err);
  if (!detail) return;
  detail.catch(() => undefined);
  answered.add(detail);
}

/** For crash-only's knownLeak: why an unhandled rejection is safe to pass (a commit failure the engine answered), or undefined. */
export function answeredCommitLeak(err: unknown): string | undefined {
  const detail = commitErrorOf(err);
  return detail && answered.has(detail) ? 'lmdb-js batch promise of a failed commit the engine answered (src/store/lmdb/commit-leak.ts)' : undefined;
}

/**
 * What a failed commit failed of (ENOSPC, EIO, an LMDB error): the reason its detail
 * promise carries, for logs and refusals; `err` itself when it has none, or when the
 * detail does not settle within `waitMs` (it settles in the same callback as the failure).
 */
export async function commitFailureCause(err: unknown, waitMs = 1000): Promise<Error> {
  const fallback = err instanceof Error ? err : new Error(String(err));
  const detail = commitErrorOf(err);
  if (!detail) return fallback;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const cause = await Promise.race([
    detail.then(
      () => undefined,
      (e: unknown) => e,
    ),
    new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), waitMs))),
  ]);
  clearTimeout(timer);
  return cause instanceof Error ? cause : fallback;
}
