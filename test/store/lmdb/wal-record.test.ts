/**
 * The write-ahead log's record framing (src/store/lmdb/wal/record.ts), by property:
 * whatever records are written, decoding gives them back; cut the bytes anywhere and
 * decoding gives exactly the records wholly before the cut; flip any bit and decoding
 * gives exactly the records before the damaged one. Never a half record, never an error.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeAll, decodeRecord, encodeRecord, HEADER_BYTES } from '../../../src/store/lmdb/wal/record.js';

const recordsArb = fc.array(fc.record({ type: fc.integer({ min: 0, max: 255 }), payload: fc.uint8Array({ maxLength: 300 }) }), { minLength: 1, maxLength: 12 });

function build(firstLsn: number, recs: Array<{ type: number; payload: Uint8Array }>): { buf: Buffer; ends: number[] } {
  const parts = recs.map((r, i) => encodeRecord(firstLsn + i, r.type, r.payload));
  const ends: number[] = [];
  let end = 0;
  for (const p of parts) ends.push((end += p.length));
  return { buf: Buffer.concat(parts), ends };
}

describe('wal record codec', () => {
  it('round-trips any sequence of records', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 40 }), recordsArb, (first, recs) => {
        const { buf } = build(first, recs);
        const got = decodeAll(buf, first);
        assert.equal(got.stop, 'end');
        assert.equal(got.validBytes, buf.length);
        assert.deepEqual(
          got.records.map((r) => [r.lsn, r.type, Buffer.from(r.payload).toString('hex')]),
          recs.map((r, i) => [first + i, r.type, Buffer.from(r.payload).toString('hex')]),
        );
      }),
    );
  });

  it('a cut at any byte keeps exactly the whole records before it', () => {
    fc.assert(
      fc.property(recordsArb, fc.nat(), (recs, at) => {
        const { buf, ends } = build(1, recs);
        const cut = at % (buf.length + 1);
        const got = decodeAll(buf.subarray(0, cut), 1);
        const whole = ends.filter((e) => e <= cut).length;
        assert.equal(got.records.length, whole);
        assert.equal(got.validBytes, whole === 0 ? 0 : ends[whole - 1]);
        assert.equal(got.stop, got.validBytes === cut ? 'end' : 'torn');
      }),
    );
  });

  it('a flipped bit stops decoding at the record that holds it', () => {
    fc.assert(
      fc.property(recordsArb, fc.nat(), fc.integer({ min: 0, max: 7 }), (recs, at, bit) => {
        const { buf, ends } = build(1, recs);
        const pos = at % buf.length;
        const damaged = Buffer.from(buf);
        damaged[pos]! ^= 1 << bit;
        const hit = ends.findIndex((e) => pos < e);
        const got = decodeAll(damaged, 1);
        assert.equal(got.records.length, hit);
        assert.notEqual(got.stop, 'end');
      }),
    );
  });

  it('stale records with the wrong lsn are not the continuation of the log', () => {
    const { buf } = build(5, [
      { type: 1, payload: new Uint8Array([1]) },
      { type: 1, payload: new Uint8Array([2]) },
    ]);
    const got = decodeAll(Buffer.concat([buf, encodeRecord(9, 1, new Uint8Array([3]))]), 5);
    assert.deepEqual([got.records.length, got.stop], [2, 'gap']);
  });

  it('zeros (a preallocated or zero-filled tail) are never a record', () => {
    const r = decodeRecord(Buffer.alloc(HEADER_BYTES + 8), 0);
    assert.equal(r.kind, 'corrupt');
    assert.throws(() => encodeRecord(0, 1, new Uint8Array()), RangeError);
  });
});
