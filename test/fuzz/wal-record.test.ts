/**
 * The WAL record decoder (src/store/lmdb/wal/record.ts) on hostile bytes: whatever a
 * damaged or foreign log file holds, decoding never throws, never reads past the buffer,
 * and accepts only what the encoder would have written byte for byte. (The codec's own
 * round-trip, cut and bit-flip properties are in test/store/lmdb/wal-record.test.ts.)
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeAll, decodeRecord, encodeRecord, HEADER_BYTES } from '../../src/store/lmdb/wal/record.js';

/** Valid records with random bytes spliced in, overwritten or appended: what damage looks like. */
const damagedLog = fc
  .tuple(
    fc.array(fc.record({ type: fc.integer({ min: 0, max: 255 }), payload: fc.uint8Array({ maxLength: 64 }) }), { maxLength: 6 }),
    fc.array(fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 24 }), fc.boolean()), { maxLength: 3 }),
  )
  .map(([recs, edits]) => {
    let buf = Buffer.concat(recs.map((r, i) => encodeRecord(1 + i, r.type, r.payload)));
    for (const [at, bytes, overwrite] of edits) {
      const pos = at % (buf.length + 1);
      buf = Buffer.concat([buf.subarray(0, pos), Buffer.from(bytes), buf.subarray(overwrite ? Math.min(buf.length, pos + bytes.length) : pos)]);
    }
    return buf;
  });

const hostileBytes = fc.oneof(
  fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)),
  damagedLog,
);

test('any bytes decode to a prefix of canonical records and a stop reason, never an exception', () => {
  fc.assert(
    fc.property(hostileBytes, fc.option(fc.integer({ min: 1, max: 10 })), (buf, first) => {
      const got = decodeAll(buf, first ?? undefined);
      assert.ok(got.validBytes >= 0 && got.validBytes <= buf.length);
      assert.ok(['end', 'torn', 'corrupt', 'gap'].includes(got.stop));
      assert.equal(got.stop === 'end', got.validBytes === buf.length);
      // Each accepted record is exactly what the encoder writes for it: nothing else is trusted.
      let offset = 0;
      for (const r of got.records) {
        const again = encodeRecord(r.lsn, r.type, r.payload);
        assert.deepEqual(buf.subarray(offset, offset + again.length), again);
        offset += again.length;
      }
      assert.equal(offset, got.validBytes);
    }),
    { numRuns: 2000 },
  );
});

test('decoding at any offset stays inside the buffer', () => {
  fc.assert(
    fc.property(hostileBytes, fc.nat(), (buf, at) => {
      const offset = at % (buf.length + 1);
      const r = decodeRecord(buf, offset);
      if (r.kind === 'record') {
        assert.ok(r.next > offset && r.next <= buf.length);
        assert.equal(r.next - offset, HEADER_BYTES + r.record.payload.length);
      }
    }),
    { numRuns: 2000 },
  );
});
