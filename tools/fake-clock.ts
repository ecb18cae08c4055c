import type { Clock } from '../src/core/types.js';

/** A clock the tests move by hand, so nothing ever sleeps. */
export class FakeClock implements Clock {
  constructor(private t = Date.UTC(2026, 0, 1)) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}
