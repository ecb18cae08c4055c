/** Shared test helpers for the client SDK: waiting on conditions and event recorders. */
import type { PoboxClient } from '../../src/client/client.js';
import type { ClientMessage, StateChange } from '../../src/client/types.js';
import type { PoboxError } from '../../src/core/errors.js';

export { waitFor } from '../support/wait.js';

/** Everything a client emits, in order, for assertions. */
export interface Recorder {
  messages: ClientMessage[];
  states: StateChange[];
  errors: PoboxError[];
  caughtUp: number[];
  /** How often each seq was handed to the application. */
  handedCount(seq: number): number;
}

export function record(client: PoboxClient): Recorder {
  const rec: Recorder = {
    messages: [],
    states: [],
    errors: [],
    caughtUp: [],
    handedCount: (seq) => rec.messages.filter((m) => m.seq === seq).length,
  };
  client.on('message', (m) => {
    rec.messages.push(m);
  });
  client.on('state', (s) => {
    rec.states.push(s);
  });
  client.on('error', (e) => {
    rec.errors.push(e);
  });
  client.on('caughtUp', ({ seq }) => {
    rec.caughtUp.push(seq);
  });
  return rec;
}

/** A promise with its resolve function, to hold a handler open until the test says so. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}
