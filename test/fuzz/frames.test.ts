/**
 * Property tests of the WebSocket frame parser (src/gateway/frames.ts): whatever text a
 * client sends, the parser returns a frame that satisfies the protocol or throws a typed
 * BAD_REQUEST, and valid frames come through unchanged. The inputs are the long-run
 * fuzzer's (bench/lib/fuzz-inputs.ts), at a count that takes a second or two.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import { wsInput, validFrame, validId, weirdValue } from '../../bench/lib/fuzz-inputs.js';
import { PoboxError } from '../../src/core/errors.js';
import { AckFrameSchema, encodeFrame, FrameError, HelloFrameSchema, parseClientFrame, PingFrameSchema, SendFrameSchema } from '../../src/gateway/frames.js';

const strictSchemas = {
  hello: HelloFrameSchema.strict(),
  ack: AckFrameSchema.strict(),
  send: SendFrameSchema.strict(),
  ping: PingFrameSchema.strict(),
};

/** Parse, and say which of the two allowed outcomes happened (anything else throws). */
function outcome(text: string): { frame: Record<string, unknown> } | { error: FrameError } {
  try {
    return { frame: parseClientFrame(text) as unknown as Record<string, unknown> };
  } catch (err) {
    assert.ok(err instanceof FrameError, `threw ${String(err)} instead of a FrameError for ${JSON.stringify(text.slice(0, 200))}`);
    assert.ok(err instanceof PoboxError);
    assert.equal(err.code, 'BAD_REQUEST');
    assert.equal(typeof err.message, 'string');
    return { error: err };
  }
}

test('any client text parses to a protocol frame with no unknown fields, or fails with a typed BAD_REQUEST', () => {
  fc.assert(
    fc.property(wsInput, (input) => {
      const text = input.kind === 'text' ? input.text : Buffer.from(input.bytes).toString('utf8');
      const r = outcome(text);
      if ('frame' in r) {
        const type = r.frame['type'] as keyof typeof strictSchemas;
        assert.ok(type in strictSchemas, `unknown type ${String(type)} accepted`);
        // Strict re-validation: every field valid, nothing the protocol does not define.
        strictSchemas[type].parse(r.frame);
        assert.equal('from' in r.frame, false, 'a send frame must never carry a client-chosen sender');
      }
    }),
    { numRuns: 2000 },
  );
});

test('valid frames come through the parser unchanged', () => {
  fc.assert(
    fc.property(validFrame, (frame) => {
      assert.deepEqual(parseClientFrame(JSON.stringify(frame)), frame);
    }),
    { numRuns: 1000 },
  );
});

test('a send frame with one bad field is refused with its id, so the client can match the error', () => {
  const field = fc.constantFrom('to', 'toDevice', 'body', 'ttlSeconds', 'receipt');
  fc.assert(
    fc.property(validId(128), field, weirdValue, (id, name, value) => {
      const frame = { type: 'send', id, to: 'bob', body: 'hi', [name]: value };
      const r = outcome(JSON.stringify(frame));
      // Some odd values are still valid for the field (a string body, a boolean receipt): then it is accepted.
      if ('error' in r) {
        assert.equal(r.error.frameId, id);
        assert.equal(r.error.field, name);
      } else {
        assert.equal(r.frame['id'], id);
      }
    }),
    { numRuns: 1000 },
  );
});

test('deeply nested and very long texts are refused, not crashed on', () => {
  for (const text of [
    '['.repeat(200_000) + ']'.repeat(200_000),
    '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000),
    `{"type":"ping","t":${'9'.repeat(100_000)}}`,
    '\u0000',
    '\ud800',
  ]) {
    assert.ok('error' in outcome(text), `accepted ${text.slice(0, 40)}...`);
  }
  // A number literal too large for a double parses as Infinity, which `t` must refuse.
  assert.ok('error' in outcome(`{"type":"ping","t":1e999}`));
});

test('server frames encode as the JSON they are', () => {
  fc.assert(
    fc.property(
      fc.record(
        { type: fc.constant('accepted' as const), id: validId(128), seq: fc.nat(), duplicate: fc.boolean(), durable: fc.constant(true as const) },
        { noNullPrototype: true },
      ),
      (frame) => {
        assert.deepEqual(JSON.parse(encodeFrame(frame)), frame);
      },
    ),
    { numRuns: 200 },
  );
});
