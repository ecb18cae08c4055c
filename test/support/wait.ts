/**
 * The one wait of the tests: poll `check` until it returns something other than
 * `undefined` or `false` (and hand that back), failing with `what` after `timeoutMs`.
 * Tests wait for conditions, never for elapsed time.
 */
export async function waitFor<T>(check: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    // Short enough to catch a state that lasts only a few milliseconds (a client between connections).
    await new Promise((r) => setTimeout(r, 5));
  }
}
