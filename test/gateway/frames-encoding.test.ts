/**
 * The hot-path frame writers (no frame object) produce exactly what JSON.stringify of the
 * protocol's frame object produces, for any message, including bodies with quotes,
 * backslashes, control characters, lone surrogates and non-ASCII text.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { AcceptedFrame, MessageFrame } from '../../src/core/protocol.js';
import type { StoredMessage } from '../../src/core/types.js';
import { encodeAcceptedFrame, encodeFrame, encodeMessageFrame } from '../../src/gateway/frames.js';

const text = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }), fc.constantFrom('"', '\\', '\n\u0000\u001f', '\ud800', '</script>'));
const ms = fc.integer({ min: 0, max: 4_102_444_800_000 });

const storedMessage = fc.record(
  {
    seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    id: text,
    from: text,
    to: text,
    toDevice: text,
    body: text,
    bytes: fc.nat(),
    sentAt: ms,
    expiresAt: ms,
    receipt: fc.boolean(),
  },
  { requiredKeys: ['seq', 'id', 'from', 'to', 'body', 'bytes', 'sentAt', 'expiresAt'] },
) as fc.Arbitrary<StoredMessage>;

test('encodeMessageFrame is the JSON of the message frame', () => {
  fc.assert(
    fc.property(storedMessage, (m) => {
      const frame: MessageFrame = { type: 'message', seq: m.seq, id: m.id, from: m.from, body: m.body, sentAt: m.sentAt, expiresAt: m.expiresAt };
      if (m.toDevice !== undefined) frame.toDevice = m.toDevice;
      if (m.receipt) frame.receipt = true;
      assert.equal(encodeMessageFrame(m), encodeFrame(frame));
      assert.deepEqual(JSON.parse(encodeMessageFrame(m)), frame);
    }),
    { numRuns: 2000 },
  );
});

test('encodeAcceptedFrame is the JSON of the accepted frame', () => {
  fc.assert(
    fc.property(text, fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.boolean(), (id, seq, duplicate) => {
      const frame: AcceptedFrame = { type: 'accepted', id, seq, duplicate, durable: true };
      assert.equal(encodeAcceptedFrame(id, seq, duplicate), encodeFrame(frame));
    }),
    { numRuns: 2000 },
  );
});
