/**
 * State machines that enforce themselves. Each machine of pobox (the device session,
 * src/gateway/session-state.ts; the client SDK, src/client/state.ts) is a table naming,
 * for each state, the states it may move to, and one transition function over it that
 * refuses every other move. A refused move is a bug in pobox, never bad input: it
 * throws an INTERNAL PoboxError and the state stays as it was.
 */
import { illegalTransition } from './errors.js';

/** For each state, the states it may move to (itself only where listed). */
export type Transitions<S extends string> = { readonly [K in S]: readonly S[] };

/** `to` when `table` allows the move from `from`; throws otherwise. */
export function transition<S extends string>(machine: string, table: Transitions<S>, from: S, to: S): S {
  if (!table[from].includes(to)) throw illegalTransition(machine, from, to);
  return to;
}
