/** The benchmarks' reader of node's --trace-gc lines (bench/lib/gc-trace.ts), on lines node 20 prints. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GcTrace } from '../../bench/lib/gc-trace.js';

const LINES = [
  'READY {"url":"http://127.0.0.1:1"}',
  '[31350:0x38dbae40]       87 ms: Scavenge 3.8 (4.0) -> 3.4 (5.0) MB, 5.76 / 0.00 ms  (average mu = 1.000, current mu = 1.000) allocation failure; ',
  '[31350:0x38dbae40]      102 ms: Scavenge 4.1 (5.2) -> 3.7 (5.7) MB, 1.08 / 0.00 ms  (average mu = 1.000, current mu = 1.000) allocation failure; ',
  '[31376:0x3e7d6d00]      206 ms: Mark-Compact 5.1 (6.0) -> 2.6 (5.0) MB, 32.76 / 0.00 ms  (average mu = 1.000, current mu = 1.000) testing; GC in old space requested',
  '[31350:0x38dbae40]      310 ms: Scavenge 3.6 (5.2) -> 3.0 (5.7) MB, 2.00 / 0.00 ms  (average mu = 1.000, current mu = 1.000) allocation failure; ',
];

describe('gc trace', () => {
  it('counts collections by kind, their pauses, and what was allocated between them', () => {
    const gc = new GcTrace();
    assert.deepEqual(
      LINES.map((l) => gc.feed(l)),
      [false, true, true, true, true],
    );
    const s = gc.summary();
    assert.deepEqual([s.scavenges, s.markCompacts], [3, 1]);
    assert.deepEqual(s.pauseMs, { p50: 2, p99: 32.76, max: 32.76, total: 41.6 });
    // 3.4 -> 4.1, 3.7 -> 5.1, 2.6 -> 3.6: the growth between the end of one and the start of the next.
    assert.equal(s.allocatedMiB, 3.1);
  });

  it('a new window forgets the collections before it but counts allocation from the last one', () => {
    const gc = new GcTrace();
    gc.feed(LINES[1]!);
    gc.reset();
    gc.feed(LINES[2]!);
    const s = gc.summary();
    assert.deepEqual([s.scavenges, s.pauseMs.total], [1, 1.08]);
    assert.equal(s.allocatedMiB, 0.7);
  });
});
