/**
 * Server config: defaults, precedence (file < env < flags), and errors naming the field.
 */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { PoboxError } from '../../src/core/errors.js';
import { parseTtl } from '../../src/gateway/auth.js';
import { loadServerConfig, storeConfigOf } from '../../src/gateway/config.js';
import { TokenBucket } from '../../src/gateway/rate-limit.js';
import { startServer } from '../../src/server/compose.js';
import { tempDir } from '../support/temp-dir.js';

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof PoboxError, String(err));
    assert.equal(err.code, 'BAD_REQUEST');
    return err.field;
  }
  assert.fail('expected a BAD_REQUEST');
}

describe('server config', () => {
  test('defaults', () => {
    const c = loadServerConfig({ env: {} });
    assert.equal(c.port, 8080);
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.dataDir, './.pobox-data');
    assert.equal(c.store, 'lmdb');
    assert.equal(c.bus, 'memory');
    assert.equal(c.session.windowMessages, 1024);
    assert.equal(c.session.windowBytes, 1024 * 1024);
    assert.deepEqual(storeConfigOf(c), { engine: 'lmdb', path: join(process.cwd(), '.pobox-data', 'lmdb') });
  });

  test('file < environment < flags', () => {
    const dir = tempDir().path;
    try {
      const file = join(dir, 'pobox.json');
      writeFileSync(file, JSON.stringify({ port: 1111, host: '127.0.0.2', logLevel: 'warn', session: { windowMessages: 5 } }));
      const c = loadServerConfig({
        flags: { config: file, port: '3333' },
        env: { PORT: '2222', POBOX_HOST: '127.0.0.3', POBOX_JWT_SECRETS: 'a'.repeat(32) + ',' + 'b'.repeat(32) },
      });
      assert.equal(c.port, 3333);
      assert.equal(c.host, '127.0.0.3');
      assert.equal(c.logLevel, 'warn');
      assert.equal(c.session.windowMessages, 5);
      assert.equal(c.session.windowBytes, 1024 * 1024, 'nested defaults survive a partial section');
      assert.equal(c.auth.secrets.length, 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('bad values are rejected with the field named', () => {
    assert.equal(
      fieldOf(() => loadServerConfig({ env: { PORT: '70000' } })),
      'port',
    );
    assert.equal(
      fieldOf(() => loadServerConfig({ env: { PORT: 'eighty' } })),
      'port',
    );
    assert.equal(
      fieldOf(() => loadServerConfig({ env: {}, flags: { store: 'sqlite' } })),
      'store',
    );
    assert.equal(
      fieldOf(() => loadServerConfig({ env: {}, flags: { bus: 'kafka://x' } })),
      'bus',
    );
    assert.equal(
      fieldOf(() => loadServerConfig({ env: { POBOX_JWT_SECRETS: 'short' } })),
      'auth.secrets.0',
    );
    assert.equal(
      fieldOf(() => loadServerConfig({ env: { POBOX_API_KEYS: 'not json' } })),
      'auth.apiKeys',
    );
    assert.equal(
      fieldOf(() => loadServerConfig({ env: {}, overrides: { session: { windowMessages: 0 } } })),
      'session.windowMessages',
    );
    assert.equal(
      fieldOf(() => loadServerConfig({ env: {}, overrides: { nonsense: true } })),
      undefined,
    );
    assert.equal(
      fieldOf(() => storeConfigOf(loadServerConfig({ env: {}, flags: { store: 'dynamodb' } }))),
      'dynamodb.table',
    );
    const dir = tempDir().path;
    try {
      const file = join(dir, 'bad.json');
      writeFileSync(file, '{not json');
      assert.equal(
        fieldOf(() => loadServerConfig({ env: {}, flags: { config: file } })),
        'config',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the message names the field', () => {
    try {
      loadServerConfig({ env: {}, overrides: { limits: { maxInvalidFrames: -1 } } });
      assert.fail('expected an error');
    } catch (err) {
      assert.match((err as Error).message, /limits\.maxInvalidFrames/);
    }
  });

  test('startServer rejects an unusable public key and a port in use, naming the problem', async () => {
    const dir = tempDir().path;
    try {
      await assert.rejects(
        startServer({ port: 0, dataDir: dir, logLevel: 'silent', auth: { publicKey: 'not a key' } }),
        (err: unknown) => err instanceof PoboxError && err.field === 'auth.publicKey',
      );
      const a = await startServer({ port: 0, dataDir: join(dir, 'a'), logLevel: 'silent' });
      try {
        await assert.rejects(
          startServer({ port: a.port, dataDir: join(dir, 'b'), logLevel: 'silent' }),
          (err: unknown) => err instanceof PoboxError && /EADDRINUSE/.test(err.message),
        );
      } finally {
        await a.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('ttl parsing and the token bucket', () => {
    assert.equal(parseTtl('90'), 90);
    assert.equal(parseTtl('15m'), 900);
    assert.equal(parseTtl('1h'), 3600);
    assert.equal(parseTtl('7d'), 7 * 86400);
    assert.throws(() => parseTtl('1w'), PoboxError);
    let now = 0;
    const b = new TokenBucket(2, 3, () => now);
    assert.deepEqual([b.take(), b.take(), b.take(), b.take()], [true, true, true, false]);
    now = 500; // half a second refills one token at 2/s
    assert.deepEqual([b.take(), b.take()], [true, false]);
  });
});
