import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeWake, encodeWake } from '../../src/bus/wake-codec.js';
import type { StoredMessage } from '../../src/core/types.js';

function message(body: string, extra: Partial<StoredMessage> = {}): StoredMessage {
  return { seq: 7, id: 'm-7', from: 'alice', to: 'bob', body, bytes: Buffer.byteLength(body), sentAt: 1000, expiresAt: 2000, ...extra };
}

describe('wake-up codec', () => {
  it('round-trips a wake with and without its message', () => {
    const m = message('hi', { toDevice: 'phone', receipt: true });
    assert.deepEqual(decodeWake(encodeWake({ user: 'bob', epoch: 'e1', seq: 7, message: m }, 4096)), { user: 'bob', epoch: 'e1', seq: 7, message: m });
    assert.deepEqual(decodeWake(encodeWake({ user: 'bob', epoch: 'e1', seq: 7 }, 4096)), { user: 'bob', epoch: 'e1', seq: 7 });
  });

  it('inlines the message exactly up to the byte limit, counting UTF-8 bytes', () => {
    const wake = (body: string) => ({ user: 'bob', epoch: 'e1', seq: 7, message: message(body) });
    const limit = 4096;
    const size = (body: string): number => Buffer.byteLength(encodeWake(wake(body), 1e9));
    // The largest ASCII body whose full payload is within the limit (the `bytes` field's digits count too).
    let n = limit;
    while (size('x'.repeat(n)) > limit) n--;
    const fits = 'x'.repeat(n);
    const overhead = limit - n;
    assert.equal(Buffer.byteLength(encodeWake(wake(fits), limit)), limit);
    assert.ok(decodeWake(encodeWake(wake(fits), limit))?.message, 'a payload of exactly the limit carries the message');
    assert.equal(decodeWake(encodeWake(wake(fits + 'x'), limit))?.message, undefined, 'one byte over drops it');
    // 'é' is one UTF-16 unit but two UTF-8 bytes: the limit is about bytes on the wire.
    const accented = 'é'.repeat(Math.ceil((limit - overhead) / 2) + 1);
    assert.ok(accented.length < limit - overhead + 2);
    assert.equal(decodeWake(encodeWake(wake(accented), limit))?.message, undefined);
    assert.equal(decodeWake(encodeWake(wake('x'), 0))?.message, undefined, 'limit 0 never inlines');
  });

  it('carries an ephemeral body of bytes whole (base64 on the bus), and never inlines a stored one', () => {
    const bytes = new Uint8Array([0, 1, 2, 250, 255, 128, 64]);
    const ephemeral = { id: 'e-1', from: 'alice', to: 'bob', body: bytes, bytes: bytes.length, sentAt: 1000 };
    const back = decodeWake(encodeWake({ user: 'bob', epoch: 'e1', seq: 0, ephemeral }, 4096));
    assert.ok(back?.ephemeral && back.ephemeral.body instanceof Uint8Array);
    assert.deepEqual([...(back.ephemeral.body as Uint8Array)], [...bytes]);
    const stored: StoredMessage = { seq: 7, id: 'm-7', from: 'alice', to: 'bob', body: bytes, bytes: bytes.length, sentAt: 1000, expiresAt: 2000 };
    assert.deepEqual(decodeWake(encodeWake({ user: 'bob', epoch: 'e1', seq: 7, message: stored }, 4096)), { user: 'bob', epoch: 'e1', seq: 7 });
  });

  it('rejects payloads that are not a well-formed wake-up', () => {
    const bad = [
      'not json',
      'null',
      '[]',
      JSON.stringify({ user: 'bob', epoch: 'e', seq: -1 }),
      JSON.stringify({ user: 'bad user', epoch: 'e', seq: 1 }),
      JSON.stringify({ user: 'bob', epoch: '', seq: 1 }),
      JSON.stringify({ user: 'bob', epoch: 'e', seq: 1.5 }),
      // A message that does not match the wake's own seq or user is not trusted.
      JSON.stringify({ user: 'bob', epoch: 'e', seq: 8, message: message('x') }),
      JSON.stringify({ user: 'carol', epoch: 'e', seq: 7, message: message('x') }),
      JSON.stringify({ user: 'bob', epoch: 'e', seq: 7, message: { ...message('x'), body: 42 } }),
    ];
    for (const payload of bad) assert.equal(decodeWake(payload), undefined, payload);
  });
});
