/**
 * Property tests of the config loader (src/gateway/config.ts): whatever the environment,
 * flags and config file hold, loading gives a config the schema accepts or a typed
 * BAD_REQUEST that names the problem; never a TypeError from half-parsed input. And the
 * documented precedence holds: flags over environment over file over defaults.
 * (src/server/config.ts: commander decides between a flag and its environment variable.)
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { badId, weirdValue } from '../../bench/lib/fuzz-inputs.js';
import { PoboxError } from '../../src/core/errors.js';
import { ServerConfigSchema, type ServerConfig } from '../../src/gateway/config.js';
import { loadServerConfig, mergeConfig, SERVER_OPTIONS } from '../../src/server/config.js';

const dir = mkdtempSync(join(tmpdir(), 'pobox-fuzz-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Values an operator might plausibly (or mistakenly) put in an environment variable. */
const envText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    '0',
    '8080',
    '65536',
    '-1',
    '1e3',
    '0x10',
    'NaN',
    'true',
    'off',
    'memory',
    'redis://127.0.0.1:6379',
    'lmdb',
    'dynamodb',
    'debug',
    '[]',
    '[{"key":"k"}]',
    'http://x',
  ),
  fc.nat({ max: 70_000 }).map(String),
  badId,
  fc.string({ maxLength: 40 }),
);

/** Mostly sensible settings, so that both outcomes (loaded, refused) are reached often. */
const saneEnv = fc.record(
  { POBOX_PORT: fc.nat({ max: 65535 }).map(String), POBOX_LOG_LEVEL: fc.constantFrom('info', 'silent'), POBOX_BUS: fc.constant('memory'), POBOX_DEMO: fc.constantFrom('1', 'off') },
  { requiredKeys: [], noNullPrototype: true },
);
const ENV_VARS = SERVER_OPTIONS.flatMap((o) => (o.option.envVar ? [o.option.envVar] : []));
const env = fc.oneof(saneEnv, saneEnv, fc.dictionary(fc.constantFrom(...ENV_VARS), envText, { maxKeys: 3, noNullPrototype: true }));

/** Flags as `pobox serve` takes them, by attribute name; `argvOf` writes them as arguments. */
const flags: fc.Arbitrary<Record<string, string | boolean>> = fc.oneof(
  fc.record({ port: fc.nat({ max: 65535 }).map(String), host: fc.constant('127.0.0.1'), store: fc.constant('lmdb') }, { requiredKeys: [], noNullPrototype: true }),
  fc.record(
    { port: envText, host: envText, store: envText, bus: envText, logLevel: envText, dataDir: envText, demo: fc.boolean(), wakeupUrl: envText, dynamodbTable: envText },
    { requiredKeys: [], noNullPrototype: true },
  ),
);

/** `--name=value` (a value may start with a dash), `--demo` / `--no-demo` for the switch. */
function argvOf(f: Record<string, string | boolean>): string[] {
  return Object.entries(f).map(([name, value]) => {
    const flag = '--' + name.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
    return typeof value === 'boolean' ? (value ? flag : flag.replace(/^--/, '--no-')) : `${flag}=${value}`;
  });
}

/** A config object: the default config with a few values replaced by odd ones, at any depth. */
const PATHS = [
  ['port'],
  ['host'],
  ['store'],
  ['bus'],
  ['dataDir'],
  ['session', 'windowMessages'],
  ['session', 'heartbeatMs'],
  ['limits', 'maxFrameBytes'],
  ['limits', 'sendRate'],
  ['limits', 'sendRate', 'perSecond'],
  ['auth', 'secrets'],
  ['auth', 'apiKeys'],
  ['postOffice', 'limits', 'maxBodyBytes'],
  ['postOffice', 'retention', 'defaultTtlSeconds'],
  ['postOffice', 'retention'],
  ['wakeupHook'],
  ['unknownField'],
  ['session', 'unknownField'],
] as const;
const overrides = fc.array(fc.tuple(fc.constantFrom(...PATHS), weirdValue), { maxLength: 2 }).map((edits) => {
  const out: Record<string, unknown> = {};
  for (const [path, value] of edits) {
    let node = out;
    for (const key of path.slice(0, -1)) {
      const next = node[key];
      node = (typeof next === 'object' && next !== null && !Array.isArray(next) ? next : (node[key] = {})) as Record<string, unknown>;
    }
    node[path[path.length - 1]!] = value;
  }
  return out;
});

const fileText: fc.Arbitrary<string> = fc.oneof(
  overrides.map((o) => JSON.stringify(o)),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? ''),
  fc.string({ maxLength: 60 }),
);

/** The two allowed outcomes of loading; anything else fails the property. */
function load(opts: Parameters<typeof loadServerConfig>[0]): ServerConfig | PoboxError {
  try {
    return loadServerConfig(opts);
  } catch (err) {
    assert.ok(err instanceof PoboxError, `threw ${String(err)}`);
    assert.equal(err.code, 'BAD_REQUEST');
    assert.match(err.message, /config/);
    return err;
  }
}

let files = 0;

test('any environment, flags and config file load to a valid config or a typed BAD_REQUEST', () => {
  let loaded = 0;
  fc.assert(
    fc.property(env, flags, fc.option(fileText), fc.option(overrides, { freq: 2 }), (e, f, text, o) => {
      let config: string | undefined;
      if (text !== null) {
        config = join(dir, `c${files++}.json`);
        writeFileSync(config, text);
      }
      const r = load({ env: e, argv: [...argvOf(f), ...(config ? ['--config', config] : [])], overrides: o ?? {} });
      if (r instanceof PoboxError) {
        // A failure names a field, or the file (config), unless the whole input was refused.
        if (r.field !== undefined) assert.ok(r.message.includes(r.field.split('.')[0]!) || r.field === 'config', `${r.field} not in ${r.message}`);
        return;
      }
      // What loaded is a fixed point of the schema: nothing half-validated slipped through.
      assert.deepEqual(ServerConfigSchema.parse(r), r);
      loaded++;
    }),
    { numRuns: 400 },
  );
  // The generators must reach both outcomes, or the property above says little.
  assert.ok(loaded > 20, `only ${loaded} of 400 inputs loaded`);
});

test('a missing config file is a BAD_REQUEST naming the file', () => {
  const r = load({ env: {}, argv: ['--config', join(dir, 'absent.json')] });
  assert.ok(r instanceof PoboxError);
  assert.equal(r.field, 'config');
});

test('flags win over the environment, which wins over the file, which wins over defaults', () => {
  const port = fc.integer({ min: 1, max: 65535 });
  fc.assert(
    fc.property(fc.option(port), fc.option(port), fc.option(port), (flagPort, envPort, filePort) => {
      const config = join(dir, `p${files++}.json`);
      writeFileSync(config, JSON.stringify(filePort === null ? {} : { port: filePort }));
      const r = loadServerConfig({
        env: envPort === null ? {} : { POBOX_PORT: String(envPort) },
        argv: ['--config', config, ...(flagPort === null ? [] : ['--port', String(flagPort)])],
      });
      assert.equal(r.port, flagPort ?? envPort ?? filePort ?? 8080);
    }),
    { numRuns: 200 },
  );
});

test('mergeConfig: the later source wins at every leaf, arrays are replaced, and nothing else is lost', () => {
  const leaf = fc.oneof(fc.integer(), fc.string({ maxLength: 5 }), fc.array(fc.nat(), { maxLength: 3 }));
  const tree = fc.dictionary(fc.constantFrom('a', 'b', 'c'), fc.oneof(leaf, fc.dictionary(fc.constantFrom('x', 'y'), leaf, { noNullPrototype: true })), { noNullPrototype: true });
  fc.assert(
    fc.property(tree, tree, (a, b) => {
      const m = mergeConfig(a, b);
      for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
        const av = a[k];
        const bv = b[k];
        const plain = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
        if (plain(av) && plain(bv)) assert.deepEqual(m[k], { ...av, ...bv });
        else assert.deepEqual(m[k], bv !== undefined ? bv : av);
      }
    }),
    { numRuns: 500 },
  );
});
