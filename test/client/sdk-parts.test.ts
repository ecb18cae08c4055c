/** The SDK's pure parts: backoff, delivery bookkeeping, pending sends, emitter, URLs. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { Backoff, backoffCeiling, backoffDelay } from '../../src/core/backoff.js';
import { toSocketUrl } from '../../src/client/client.js';
import { DeliveryTracker } from '../../src/client/delivery.js';
import { TypedEmitter } from '../../src/core/emitter.js';
import { PendingSends } from '../../src/client/sends.js';
import { PoboxError } from '../../src/core/errors.js';
import type { SendFrame } from '../../src/core/protocol.js';

describe('backoff', () => {
  it('doubles the ceiling per attempt up to the maximum', () => {
    const opts = { baseMs: 100, maxMs: 1000 };
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 60].map((a) => backoffCeiling(a, opts)),
      [100, 200, 400, 800, 1000, 1000, 1000],
    );
  });

  it('draws the delay uniformly below the ceiling (full jitter)', () => {
    const opts = { baseMs: 100, maxMs: 1000 };
    assert.equal(backoffDelay(3, opts, () => 0).delayMs, 0);
    assert.equal(backoffDelay(3, opts, () => 0.5).delayMs, 400);
    assert.equal(backoffDelay(3, opts, () => 0.999999).delayMs, 799);
  });

  it('counts attempts and starts over after reset', () => {
    const b = new Backoff({ baseMs: 10, maxMs: 1000 }, () => 0.5);
    assert.deepEqual(
      [b.next(), b.next(), b.next()].map((s) => [s.attempt, s.ceilingMs, s.delayMs]),
      [
        [0, 10, 5],
        [1, 20, 10],
        [2, 40, 20],
      ],
    );
    b.reset();
    assert.equal(b.next().attempt, 0);
  });
});

describe('delivery tracker', () => {
  it('hands each seq once and drops what was already handed on a later connection', () => {
    const d = new DeliveryTracker();
    d.welcome('e1', false, 0);
    assert.deepEqual(
      [1, 2, 3].map((s) => d.offer(s)),
      ['new', 'new', 'new'],
    );
    d.confirm(2);
    assert.equal(d.ackDue(), 2);
    d.ackSent(2);
    // Reconnect: the server only knows cursor 2 and sends 3 again.
    d.welcome('e1', false, 2);
    assert.equal(d.offer(3), 'duplicate');
    assert.equal(d.offer(4), 'new');
  });

  it('never acks past what the server has sent on the current connection', () => {
    const d = new DeliveryTracker();
    d.welcome('e1', false, 0);
    for (const s of [1, 2, 3, 4, 5]) d.offer(s);
    d.confirm(5);
    d.welcome('e1', false, 1); // reconnected before the ack went out
    assert.equal(d.ackDue(), undefined, 'nothing re-sent yet on this connection');
    assert.equal(d.offer(2), 'duplicate');
    assert.equal(d.offer(3), 'duplicate');
    assert.equal(d.ackDue(), 3);
  });

  it('starts over when the epoch changes, and ignores late confirmations of the old epoch', () => {
    const d = new DeliveryTracker();
    d.welcome('e1', false, 0);
    d.offer(7);
    const oldGeneration = d.generation;
    assert.equal(d.welcome('e2', true, 0), true);
    d.confirm(7, oldGeneration);
    assert.equal(d.confirmed, 0);
    assert.equal(d.offer(1), 'new');
    // A different epoch than remembered also resets, even without epochChanged.
    d.offer(2);
    assert.equal(d.welcome('e3', false, 0), true);
    assert.equal(d.offer(1), 'new');
  });

  it('resumes from a saved position', () => {
    const d = new DeliveryTracker({ epoch: 'e1', lastSeq: 10 });
    d.welcome('e1', false, 10);
    assert.equal(d.offer(10), 'duplicate');
    assert.equal(d.offer(11), 'new');
  });

  it('a gap notice counts as handed up to its `to` (so it can be acked), and is new only once per epoch', () => {
    const d = new DeliveryTracker();
    d.welcome('e1', false, 0);
    d.offer(1);
    assert.equal(d.gap(3), 'new');
    assert.equal(d.handed, 3);
    d.confirm(3);
    assert.equal(d.ackDue(), 3, 'the ack may move past the gap');
    d.welcome('e1', false, 0); // reconnected before that ack was committed
    assert.equal(d.offer(1), 'duplicate');
    assert.equal(d.gap(3), 'duplicate', 'the same notice again is not new');
    assert.equal(d.ackDue(), 3);
    assert.equal(d.gap(5), 'new', 'one reaching further is');
    d.welcome('e2', true, 0);
    assert.equal(d.gap(3), 'new', 'a new epoch starts over');
  });

  it("acks the `to` of a notice at or below the server's cursor (an admin's skip left it), once, and only when confirmed", () => {
    const d = new DeliveryTracker();
    d.welcome('e1', false, 9); // skipped to 9: the cursor is past the notice
    assert.equal(d.gap(7), 'new');
    assert.equal(d.ackDue(), undefined, 'not confirmed yet');
    d.confirm(7);
    assert.equal(d.ackDue(), 7, 'the ack that removes the notice, though the cursor does not move');
    d.ackSent(7);
    assert.equal(d.ackDue(), undefined, 'sent once');
    d.welcome('e1', false, 9); // the ack was lost with the connection: the notice comes again
    assert.equal(d.gap(7), 'duplicate');
    assert.equal(d.ackDue(), 7, 'and its ack goes again');
    d.offer(10);
    d.confirm(10);
    assert.equal(d.ackDue(), 10, 'an ack past the cursor covers it');
  });

  it('caps a confirmation at what was handed', () => {
    const d = new DeliveryTracker();
    d.welcome('e1', false, 0);
    d.offer(1);
    d.confirm(99);
    assert.equal(d.confirmed, 1);
  });
});

describe('pending sends', () => {
  const frame = (id: string, body = 'x'): SendFrame => ({ type: 'send', id, to: 'bob', body });

  it('writes each pending send once per connection, in order, until accepted', async () => {
    const p = new PendingSends();
    const a = p.add(frame('a'), 0);
    p.add(frame('b'), 0);
    assert.deepEqual(
      p.toWrite(1).map((t) => JSON.parse(t as string).id),
      ['a', 'b'],
    );
    assert.deepEqual(p.toWrite(1), []);
    assert.equal(p.accepted('a', 5, false), true);
    assert.deepEqual(await a.promise, { id: 'a', seq: 5, duplicate: false });
    assert.deepEqual(
      p.toWrite(2).map((t) => JSON.parse(t as string).id),
      ['b'],
    );
    assert.equal(p.accepted('nope', 1, false), false);
  });

  it('shares the promise of a send with the same id', () => {
    const p = new PendingSends();
    const first = p.add(frame('a'), 0);
    const second = p.add(frame('a'), 0);
    assert.equal(second.isNew, false);
    assert.equal(second.promise, first.promise);
    p.rejectAll(new PoboxError('UNAVAILABLE', 'closed'));
    return assert.rejects(first.promise, { code: 'UNAVAILABLE' });
  });

  it('rejects with the server code, and on timeout', async () => {
    const p = new PendingSends();
    const a = p.add(frame('a'), 0);
    p.failed('a', new PoboxError('MAILBOX_FULL', 'full'));
    await assert.rejects(a.promise, (e: PoboxError) => e.code === 'MAILBOX_FULL' && e.retryable);
    const b = p.add(frame('b'), 5);
    await assert.rejects(b.promise, { code: 'UNAVAILABLE' });
    assert.equal(p.size, 0);
  });

  it('names the largest send written on a connection', async () => {
    const p = new PendingSends();
    const promises = [p.add(frame('small'), 0).promise, p.add(frame('big', 'x'.repeat(100)), 0).promise];
    p.toWrite(3);
    promises.push(p.add(frame('bigger-not-written', 'x'.repeat(1000)), 0).promise);
    assert.equal(p.largestWrittenOn(3), 'big');
    p.rejectAll(new PoboxError('UNAVAILABLE', 'done'));
    for (const promise of promises) await assert.rejects(promise, { code: 'UNAVAILABLE' });
  });
});

describe('typed emitter', () => {
  it('returns listener promises, isolates throwing listeners, and unsubscribes', async () => {
    const errors: unknown[] = [];
    const e = new TypedEmitter<{ n: number }>((err) => errors.push(err));
    const seen: number[] = [];
    const off = e.on('n', (n) => {
      seen.push(n);
    });
    e.on('n', () => {
      throw new Error('boom');
    });
    e.once('n', async (n) => {
      seen.push(n * 10);
    });
    const pending = e.emitAndCollect('n', 1);
    assert.equal(pending.length, 1);
    await Promise.all(pending);
    e.emit('n', 2);
    off();
    e.emit('n', 3);
    assert.deepEqual(seen, [1, 10, 2]);
    assert.equal(errors.length, 3);
    assert.equal(e.listenerCount('n'), 1);
  });
});

describe('socket URL', () => {
  it('adds the token as a query parameter and maps http to ws', () => {
    assert.equal(toSocketUrl('http://127.0.0.1:8080/ws', 'a.b.c'), 'ws://127.0.0.1:8080/ws?token=a.b.c');
    assert.equal(toSocketUrl('wss://h/x?v=1&token=old', 't'), 'wss://h/x?v=1&token=t');
    assert.throws(
      () => toSocketUrl('ftp://h', 't'),
      (e: PoboxError) => e.code === 'BAD_REQUEST' && e.field === 'url',
    );
    assert.throws(() => toSocketUrl('not a url', 't'), { code: 'BAD_REQUEST' });
  });
});

describe('browser safety', () => {
  it('imports nothing but its own files, the core protocol, error, emitter, backoff, bytes and state-machine modules, and msgpackr', () => {
    const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');
    const allowed = new Set([
      'core/protocol.ts',
      'core/errors.ts',
      'core/emitter.ts',
      'core/backoff.ts',
      'core/bytes.ts',
      'core/state-machine.ts',
      ...readdirSync(path.join(src, 'client')).map((f) => `client/${f}`),
    ]);
    // The one package: MessagePack connections. Its `browser` export is plain JavaScript with no Node built-ins.
    const packages = new Set(['msgpackr']);
    const seen = new Set<string>();
    const visit = (rel: string): void => {
      if (seen.has(rel)) return;
      seen.add(rel);
      assert.ok(allowed.has(rel), `the client SDK reaches ${rel}`);
      // Comments may show imports for the reader (e.g. of 'ws'); only code counts.
      const text = readFileSync(path.join(src, rel), 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/\/\/.*$/gm, '');
      for (const m of text.matchAll(/^\s*(?:import|export)\s[^'";]*?from\s+'([^']+)'/gm)) {
        const spec = m[1]!;
        if (packages.has(spec)) continue;
        assert.ok(spec.startsWith('.'), `${rel} imports the package ${spec}`);
        visit(path.posix.normalize(path.posix.join(path.posix.dirname(rel), spec.replace(/\.js$/, '.ts'))));
      }
    };
    visit('client/index.ts');
    for (const rel of seen) assert.ok(!/(?<![A-Za-z])Buffer\b/.test(readFileSync(path.join(src, rel), 'utf8')), `${rel} uses Node's Buffer`);
    assert.ok(seen.has('client/client.ts') && seen.has('core/errors.ts'), 'the walk followed the imports');
  });
});
