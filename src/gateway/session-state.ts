/**
 * The delivery state machine of one device session (ARCHITECTURE.md "The delivery state
 * machine"): its states, the moves between them, and its one transition function.
 * DeviceSession changes state only through it and announces every move as the gateway
 * event `sessionState`; metrics count sessions by state from those events.
 */
import { transition, type Transitions } from '../core/state-machine.js';

export type SessionState = 'awaiting-hello' | 'starting' | 'draining' | 'live' | 'closed';

export const SESSION_MOVES: Transitions<SessionState> = {
  'awaiting-hello': ['starting', 'closed'],
  starting: ['draining', 'closed'],
  draining: ['live', 'closed'],
  live: ['closed'],
  closed: [],
};

/** The state a new session starts in. */
export const FIRST_SESSION_STATE: SessionState = 'awaiting-hello';

/** The states a session is counted in while it is open: all but the last one. */
export const OPEN_SESSION_STATES: readonly SessionState[] = (Object.keys(SESSION_MOVES) as SessionState[]).filter((s) => SESSION_MOVES[s].length > 0);

/** The session's transition function: `to`, or an INTERNAL error for a move the table does not allow. */
export function nextSessionState(from: SessionState, to: SessionState): SessionState {
  return transition('device session', SESSION_MOVES, from, to);
}
