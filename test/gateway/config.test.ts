/**
 * Server config: defaults, precedence (file < env < flags), and errors naming the field
 * and the flag or environment variable it came from.
 */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { PoboxError } from '../../src/core/errors.js';
import { parseTtl } from '../../src/gateway/auth.js';
import { storeConfigOf } from '../../src/gateway/config.js';
import { TokenBucket } from '../../src/gateway/rate-limit.js';
import { startServer } from '../../src/server/compose.js';
import { loadServerConfig } from '../../src/server/config.js';
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
        argv: ['--config', file, '--port', '3333'],
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
      fieldOf(() => loadServerConfig({ env: {}, argv: ['--store', 'sqlite'] })),
      'store',
    );
    assert.equal(
      fieldOf(() => loadServerConfig({ env: {}, argv: ['--bus', 'kafka://x'] })),
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
      fieldOf(() => storeConfigOf(loadServerConfig({ env: {}, argv: ['--store', 'dynamodb'] }))),
      'dynamodb.table',
    );
    const dir = tempDir().path;
    try {
      const file = join(dir, 'bad.json');
      writeFileSync(file, '{not json');
      assert.equal(
        fieldOf(() => loadServerConfig({ env: {}, argv: ['--config', file] })),
        'config',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('POBOX_PORT beats PORT, --port beats both; an empty variable counts as unset', () => {
    assert.equal(loadServerConfig({ env: { PORT: '2222' } }).port, 2222);
    assert.equal(loadServerConfig({ env: { PORT: '2222', POBOX_PORT: '4444' } }).port, 4444);
    assert.equal(loadServerConfig({ env: { PORT: '2222', POBOX_PORT: '4444' }, argv: ['--port', '5555'] }).port, 5555);
    assert.equal(loadServerConfig({ env: { POBOX_PORT: '', POBOX_HOST: '' } }).port, 8080);
    assert.equal(loadServerConfig({ env: { POBOX_HOST: '' } }).host, '127.0.0.1');
  });

  test('every flag has its environment variable, which the flag beats', () => {
    const env = {
      POBOX_DATA_DIR: '/e/data',
      POBOX_STORE: 'dynamodb',
      POBOX_DYNAMODB_TABLE: 'env_table',
      POBOX_DYNAMODB_ENDPOINT: 'http://127.0.0.1:1',
      POBOX_DYNAMODB_REGION: 'eu-west-1',
      POBOX_JWT_PUBLIC_KEY: 'env-key',
      POBOX_HOST: '127.0.0.9',
      POBOX_BUS: 'redis://127.0.0.1:6379',
      POBOX_LOG_LEVEL: 'warn',
      POBOX_WAKEUP_URL: 'http://127.0.0.1:2/wake',
      POBOX_API_KEYS: JSON.stringify([{ key: 'k'.repeat(24), scopes: ['send'] }]),
    };
    const fromEnv = loadServerConfig({ env });
    assert.deepEqual(
      [
        fromEnv.dataDir,
        fromEnv.store,
        fromEnv.dynamodb,
        fromEnv.auth.publicKey,
        fromEnv.host,
        fromEnv.bus,
        fromEnv.logLevel,
        fromEnv.wakeupHook?.url,
        fromEnv.auth.apiKeys[0]?.name,
      ],
      [
        '/e/data',
        'dynamodb',
        { table: 'env_table', endpoint: 'http://127.0.0.1:1', region: 'eu-west-1' },
        'env-key',
        '127.0.0.9',
        'redis://127.0.0.1:6379',
        'warn',
        'http://127.0.0.1:2/wake',
        'backend',
      ],
    );
    const argv = [
      '--data-dir',
      '/f/data',
      '--store',
      'lmdb',
      '--dynamodb-table',
      'flag_table',
      '--host',
      '127.0.0.8',
      '--bus',
      'memory',
      '--log-level',
      'error',
      '--wakeup-url',
      'http://127.0.0.1:3/w',
    ];
    const fromFlags = loadServerConfig({ env, argv: [...argv, '--api-keys', '[]', '--jwt-public-key', 'flag-key'] });
    assert.deepEqual(
      [
        fromFlags.dataDir,
        fromFlags.store,
        fromFlags.dynamodb.table,
        fromFlags.auth.publicKey,
        fromFlags.host,
        fromFlags.bus,
        fromFlags.logLevel,
        fromFlags.wakeupHook?.url,
        fromFlags.auth.apiKeys,
      ],
      ['/f/data', 'lmdb', 'flag_table', 'flag-key', '127.0.0.8', 'memory', 'error', 'http://127.0.0.1:3/w', []],
    );
  });

  test('--demo and POBOX_DEMO: a switch, a yes or a no', () => {
    assert.equal(loadServerConfig({ env: {} }).demo, undefined);
    assert.equal(loadServerConfig({ env: {}, argv: ['--demo'] }).demo, true);
    assert.equal(loadServerConfig({ env: {}, argv: ['--demo', 'off'] }).demo, false);
    assert.equal(loadServerConfig({ env: { POBOX_DEMO: '0' } }).demo, false);
    assert.equal(loadServerConfig({ env: { POBOX_DEMO: 'yes' } }).demo, true);
    assert.equal(loadServerConfig({ env: { POBOX_DEMO: '1' }, argv: ['--no-demo'] }).demo, false);
    assert.equal(
      fieldOf(() => loadServerConfig({ env: { POBOX_DEMO: 'maybe' } })),
      'demo',
    );
  });

  test('--store-worker, POBOX_STORE_WORKER and storeWorker run the engine in a worker thread, on either engine', () => {
    assert.equal(loadServerConfig({ env: {} }).storeWorker, false);
    const on = loadServerConfig({ env: {}, argv: ['--store-worker'] });
    assert.equal(on.storeWorker, true);
    assert.deepEqual(storeConfigOf(on), { engine: 'lmdb', path: join(process.cwd(), '.pobox-data', 'lmdb'), worker: true });
    assert.equal(loadServerConfig({ env: { POBOX_STORE_WORKER: 'on' }, argv: ['--store-worker', 'no'] }).storeWorker, false);
    const ddb = loadServerConfig({ env: { POBOX_STORE_WORKER: '1', POBOX_STORE: 'dynamodb', POBOX_DYNAMODB_TABLE: 'pobox_t' } });
    assert.deepEqual(storeConfigOf(ddb), { engine: 'dynamodb', table: 'pobox_t', region: 'us-east-1', worker: true });
    assert.equal(loadServerConfig({ env: {}, overrides: { storeWorker: true } }).storeWorker, true);
    assert.equal(
      fieldOf(() => loadServerConfig({ env: { POBOX_STORE_WORKER: 'sometimes' } })),
      'storeWorker',
    );
  });

  test('the message names the flag or the environment variable a bad value came from', () => {
    const messageOf = (fn: () => unknown): string => {
      try {
        fn();
      } catch (err) {
        assert.ok(err instanceof PoboxError && err.code === 'BAD_REQUEST', String(err));
        return err.message;
      }
      assert.fail('expected a BAD_REQUEST');
    };
    assert.match(
      messageOf(() => loadServerConfig({ env: { POBOX_PORT: 'eighty' } })),
      /port: .*\(from env POBOX_PORT\)/,
    );
    assert.match(
      messageOf(() => loadServerConfig({ env: { POBOX_PORT: 'eighty' }, argv: ['--port', '-1'] })),
      /port: .*\(from --port\)/,
    );
    assert.match(
      messageOf(() => loadServerConfig({ env: { POBOX_JWT_SECRETS: 'short' } })),
      /auth\.secrets\.0: .*\(from env POBOX_JWT_SECRETS\)/,
    );
    assert.match(
      messageOf(() => loadServerConfig({ env: { POBOX_DEMO: 'maybe' } })),
      /demo: .*\(from env POBOX_DEMO\)/,
    );
    // A flag pobox does not have is refused as bad input too, not by exiting the process.
    assert.match(
      messageOf(() => loadServerConfig({ env: {}, argv: ['--prot', '1'] })),
      /unknown option '--prot'/,
    );
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
