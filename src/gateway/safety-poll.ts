/**
 * The safety poll: every live session reads its mailbox once per `session.safetyPollMs`
 * even when no wake-up came, so a message whose wake-up was lost (its node died while cut
 * off from the bus, a publish that failed, a bus that dropped it) still reaches a
 * connected device within a bound:
 *
 *   delivery delay after any single lost wake-up <= safetyPollMs + one store read
 *   (the read itself is bounded by postOffice.storeTimeoutMs).
 *
 * It is cheap because a read that finds nothing new stops at the mailbox's last seq: the
 * engines read the mailbox's meta record first and return without touching a message
 * when lastSeq <= the position asked for (DynamoDB: one strongly consistent GetItem of
 * the meta item, 1 read unit; cost per device per day in docs/scale-out.md).
 *
 * One timer per server, not per session: it ticks `SLICES` times per interval and polls
 * the sessions of one slice each tick, so reads are spread over the interval instead of
 * arriving all at once.
 */

/** What the poll needs of a session (src/gateway/session.ts). */
export interface PolledSession {
  readonly state: string;
  /** Read after the last seq sent, as a wake-up would make it do. */
  safetyRead(): void;
}

const SLICES = 10;

export function startSafetyPoll(sessions: () => Iterable<PolledSession>, intervalMs: number): () => void {
  if (intervalMs <= 0) return () => undefined;
  const sliceOf = new WeakMap<PolledSession, number>();
  let next = 0;
  let tick = 0;
  const timer = setInterval(
    () => {
      const slice = tick++ % SLICES;
      for (const s of sessions()) {
        let mine = sliceOf.get(s);
        if (mine === undefined) sliceOf.set(s, (mine = next++ % SLICES));
        if (mine === slice && s.state === 'live') s.safetyRead();
      }
    },
    Math.max(1, Math.floor(intervalMs / SLICES)),
  );
  timer.unref();
  return () => clearInterval(timer);
}
