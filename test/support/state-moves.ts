/** For the state machine tests: every move a transition function allows, trying each pair of states, and how it refuses one. */
import assert from 'node:assert/strict';
import { isPoboxError } from '../../src/core/errors.js';
import type { Transitions } from '../../src/core/state-machine.js';

/** Moves as 'from > to'; every refused move must throw an INTERNAL PoboxError. */
export function allowedMoves<S extends string>(table: Transitions<S>, next: (from: S, to: S) => S): string[] {
  const states = Object.keys(table) as S[];
  const allowed: string[] = [];
  for (const from of states) {
    for (const to of states) {
      try {
        next(from, to);
        allowed.push(`${from} > ${to}`);
      } catch (err) {
        assert.ok(isPoboxError(err) && err.code === 'INTERNAL', `${from} > ${to} throws an INTERNAL PoboxError`);
      }
    }
  }
  return allowed;
}

/** `next` refuses the move from `from` to `to` with an INTERNAL PoboxError naming both states. */
export function assertRefused<S extends string>(next: (from: S, to: S) => S, from: S, to: S): void {
  assert.throws(
    () => next(from, to),
    (err) => isPoboxError(err) && err.code === 'INTERNAL' && err.message.includes(`from ${from} to ${to}`),
  );
}
