/** Core: error codes and the typed error, ids, input parsing and config parsing. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ERROR_CODES, ErrorCode, HTTP_STATUS, PoboxError, isErrorCode, isPoboxError, toPoboxError } from '../../src/core/errors.js';
import { ID_PATTERN, isValidId, MessageIdSchema, UserIdSchema } from '../../src/core/ids.js';
import { parseInput } from '../../src/core/validate.js';
import { DAY_SECONDS, KiB, MiB, parseConfig, PostOfficeConfigSchema, StoreConfigSchema } from '../../src/core/config.js';
import { z } from 'zod';

function thrown(fn: () => unknown): PoboxError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof PoboxError, `expected PoboxError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a throw');
}

describe('errors', () => {
  it('has exactly the eleven codes of docs/protocol.md, each with an HTTP status', () => {
    assert.deepEqual([...ERROR_CODES].sort(), [
      'BAD_REQUEST',
      'CONFLICT',
      'FORBIDDEN',
      'INTERNAL',
      'MAILBOX_FULL',
      'NOT_FOUND',
      'PAYLOAD_TOO_LARGE',
      'RATE_LIMITED',
      'SENDER_QUOTA',
      'UNAUTHORIZED',
      'UNAVAILABLE',
    ]);
    for (const c of ERROR_CODES) assert.ok(HTTP_STATUS[c] >= 400 && HTTP_STATUS[c] < 600, c);
    assert.equal(HTTP_STATUS.PAYLOAD_TOO_LARGE, 413);
    assert.equal(HTTP_STATUS.NOT_FOUND, 404);
    assert.equal(HTTP_STATUS.CONFLICT, 409);
    assert.equal(new PoboxError('CONFLICT', 'not empty').retryable, false);
    assert.equal(HTTP_STATUS.SENDER_QUOTA, 429);
    assert.equal(new PoboxError('SENDER_QUOTA', 'later').retryable, true);
  });

  it('PoboxError carries code, field, retryability and serialises without the stack', () => {
    const e = new PoboxError('MAILBOX_FULL', 'full', { field: 'to' });
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'PoboxError');
    assert.equal(e.retryable, true);
    assert.deepEqual(JSON.parse(JSON.stringify(e)), { code: 'MAILBOX_FULL', message: 'full', field: 'to' });
    assert.deepEqual(new PoboxError('BAD_REQUEST', 'x').toJSON(), { code: 'BAD_REQUEST', message: 'x' });
    assert.equal(new PoboxError('BAD_REQUEST', 'x').retryable, false);
    assert.equal(new PoboxError('UNAVAILABLE', 'x').retryable, true);
  });

  it('toPoboxError keeps PoboxErrors and wraps anything else with a cause', () => {
    const own = new PoboxError('NOT_FOUND', 'x');
    assert.equal(toPoboxError(own), own);
    const cause = new Error('disk');
    const wrapped = toPoboxError(cause, 'UNAVAILABLE');
    assert.deepEqual([wrapped.code, wrapped.message, wrapped.cause], ['UNAVAILABLE', 'disk', cause]);
    assert.equal(toPoboxError('text').code, 'INTERNAL');
    assert.equal(isPoboxError(wrapped), true);
    assert.equal(isPoboxError(cause), false);
  });

  it('isErrorCode accepts only the known codes', () => {
    assert.equal(isErrorCode(ErrorCode.RATE_LIMITED), true);
    assert.equal(isErrorCode('TEAPOT'), false);
    assert.equal(isErrorCode(404), false);
  });
});

describe('ids', () => {
  it('accepts the safe alphabet up to 64 characters', () => {
    for (const ok of ['a', 'bob', 'user@example.com', 'dev:1', 'A-b_c.d', '9', 'x'.repeat(64)]) assert.ok(isValidId(ok), ok);
  });

  it('rejects anything needing escaping, a leading symbol, or too long', () => {
    for (const bad of ['', '-a', '.a', 'a b', 'a/b', 'a\\b', 'ä', 'a\n', 'a#b', 'x'.repeat(65), 'a%20']) assert.ok(!isValidId(bad), JSON.stringify(bad));
    assert.equal(isValidId(42), false);
    assert.equal(ID_PATTERN.test('a\nb'), false);
  });

  it('message ids may be up to 128 characters', () => {
    assert.ok(MessageIdSchema.safeParse('m'.repeat(128)).success);
    assert.ok(!MessageIdSchema.safeParse('m'.repeat(129)).success);
    assert.ok(!UserIdSchema.safeParse('m'.repeat(65)).success);
  });
});

describe('parseInput', () => {
  const schema = z.object({ user: UserIdSchema, n: z.number().int(), nested: z.object({ x: z.string() }).optional() });

  it('returns the parsed value', () => {
    assert.deepEqual(parseInput(schema, { user: 'bob', n: 1 }, 'send'), { user: 'bob', n: 1 });
  });

  it('throws BAD_REQUEST naming the first bad field, nested paths joined by dots', () => {
    const e = thrown(() => parseInput(schema, { user: 'b b', n: 1 }, 'send'));
    assert.deepEqual([e.code, e.field], ['BAD_REQUEST', 'user']);
    assert.match(e.message, /^send: user: /);
    assert.equal(thrown(() => parseInput(schema, { user: 'bob', n: 1, nested: { x: 5 } }, 'send')).field, 'nested.x');
    const root = thrown(() => parseInput(schema, 'nope', 'send'));
    assert.deepEqual([root.code, root.field], ['BAD_REQUEST', undefined]);
  });

  it('always takes a label from the caller: a field alone names the input by that field', () => {
    // @ts-expect-error a label is required: no default stands in for a forgotten one
    assert.throws(() => parseInput(UserIdSchema, 'b b'));
    // @ts-expect-error undefined is not a label
    assert.throws(() => parseInput(UserIdSchema, 'b b', undefined));
    const e = thrown(() => parseInput(UserIdSchema, 'b b', { field: 'user' }));
    assert.deepEqual([e.code, e.field], ['BAD_REQUEST', 'user']);
    assert.match(e.message, /^user: user id /);
    assert.match(thrown(() => parseInput(UserIdSchema, 'b b', { what: 'pull', field: 'user' })).message, /^pull: user: /);
  });
});

describe('config', () => {
  it('defaults match the README: 64 KiB body, 10,000 messages / 64 MiB per mailbox, 30 days', () => {
    const c = parseConfig(PostOfficeConfigSchema, {});
    assert.equal(c.limits.maxBodyBytes, 64 * KiB);
    assert.equal(c.limits.maxMailboxMessages, 10_000);
    assert.equal(c.limits.maxMailboxBytes, 64 * MiB);
    assert.equal(c.retention.defaultTtlSeconds, 30 * DAY_SECONDS);
    assert.equal(c.retention.maxTtlSeconds, 30 * DAY_SECONDS);
  });

  it('keeps given values and fills the rest', () => {
    const c = parseConfig(PostOfficeConfigSchema, { limits: { maxBodyBytes: 100 }, maxBatch: 5 });
    assert.deepEqual([c.limits.maxBodyBytes, c.limits.maxMailboxMessages, c.maxBatch], [100, 10_000, 5]);
  });

  it('names the bad field in the error', () => {
    const e = thrown(() => parseConfig(PostOfficeConfigSchema, { limits: { maxBodyBytes: -1 } }, 'post office config'));
    assert.deepEqual([e.code, e.field], ['BAD_REQUEST', 'limits.maxBodyBytes']);
    assert.match(e.message, /invalid post office config/);
    assert.match(e.message, /limits\.maxBodyBytes/);
    assert.equal(thrown(() => parseConfig(PostOfficeConfigSchema, { limits: { maxBodyByte: 10 } })).code, 'BAD_REQUEST', 'unknown keys are refused');
    assert.equal(thrown(() => parseConfig(PostOfficeConfigSchema, { retention: { defaultTtlSeconds: 100, maxTtlSeconds: 10 } })).field, 'retention.defaultTtlSeconds');
    assert.equal(thrown(() => parseConfig(PostOfficeConfigSchema, { maxBatch: 'many' })).field, 'maxBatch');
  });

  it('store config picks the engine and validates its fields', () => {
    assert.deepEqual(parseConfig(StoreConfigSchema, { engine: 'lmdb', path: '/tmp/x' }), { engine: 'lmdb', path: '/tmp/x' });
    const d = parseConfig(StoreConfigSchema, { engine: 'dynamodb', table: 'pobox' });
    assert.deepEqual([d.engine, d.engine === 'dynamodb' ? [d.table, d.region] : null], ['dynamodb', ['pobox', 'us-east-1']]);
    assert.equal(thrown(() => parseConfig(StoreConfigSchema, { engine: 'lmdb', path: '' })).field, 'path');
    assert.equal(thrown(() => parseConfig(StoreConfigSchema, { engine: 'dynamodb', table: 'a b' })).field, 'table');
    assert.equal(thrown(() => parseConfig(StoreConfigSchema, { engine: 'dynamodb', table: 'pobox', endpoint: 'not a url' })).field, 'endpoint');
    assert.equal(thrown(() => parseConfig(StoreConfigSchema, { engine: 'sqlite' })).code, 'BAD_REQUEST');
  });
});
