/**
 * The client's connection state machine (see client.ts for when each move happens): the
 * moves between its states and its one transition function. PoboxClient changes state
 * only through it, and announces every move as the `state` event.
 *
 * connecting moves to connecting again when the first socket opens (the state a client
 * is made in, now with its URL); reconnecting to reconnecting when fetching the token
 * for the next attempt failed.
 */
import { transition, type Transitions } from '../core/state-machine.js';
import type { ClientState } from './types.js';

export const CLIENT_MOVES: Transitions<ClientState> = {
  connecting: ['connecting', 'open', 'reconnecting', 'closed'],
  open: ['live', 'reconnecting', 'closed'],
  live: ['reconnecting', 'closed'],
  reconnecting: ['connecting', 'reconnecting', 'closed'],
  closed: [],
};

/** The client's transition function: `to`, or an INTERNAL error for a move the table does not allow. */
export function nextClientState(from: ClientState, to: ClientState): ClientState {
  return transition('client', CLIENT_MOVES, from, to);
}
