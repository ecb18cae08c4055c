/**
 * Where the server's config comes from. Every setting a flag can give is declared once,
 * below, as a commander Option with its environment variable (`Option.env`), so commander
 * decides between the two: a flag beats its environment variable. Below both sits the
 * optional JSON config file (`--config` / POBOX_CONFIG), below that the schema's defaults
 * (ServerConfigSchema, src/gateway/config.ts). The merged result is validated by that one
 * schema; a bad value is a BAD_REQUEST naming the field and the flag or environment
 * variable it came from.
 *
 * `pobox serve` and `pobox token` add these options to their commands (addServerOptions)
 * and read the config off the parsed command (serverConfigOf); library users call
 * `loadServerConfig({ argv, env, overrides })`, which parses `argv` the same way.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { z } from 'zod';
import { PoboxError } from '../core/errors.js';
import { badInputError } from '../core/validate.js';
import { ServerConfigSchema, type ServerConfig } from '../gateway/config.js';

type Plain = Record<string, unknown>;

/** One setting of the command line: its commander Option and the config field it sets. */
export interface ServerOption {
  option: Option;
  /** The dotted config field (ServerConfigSchema) the value goes to; none for `--config`. */
  field?: string;
  /** Commander's value (text, or a boolean for a switch) as the config field takes it; the schema checks the result. */
  value?: (given: string | boolean) => unknown;
  /** Also an option of `pobox token`, which finds the data dir, the store and the secrets the same way. */
  token?: boolean;
}

const DEFAULTS = ServerConfigSchema.parse({});

/** A number when the text is one; otherwise the text, so the schema names the field. */
function num(given: string | boolean): unknown {
  if (typeof given !== 'string') return given;
  const n = Number(given);
  return Number.isFinite(n) && given.trim() !== '' ? n : given;
}

/** 1/true/yes/on and 0/false/no/off (any case); a bare `--demo` is true; anything else stays text for the schema to refuse. */
function bool(given: string | boolean): unknown {
  if (typeof given === 'boolean') return given;
  if (/^(1|true|yes|on)$/i.test(given)) return true;
  if (/^(0|false|no|off)$/i.test(given)) return false;
  return given;
}

function list(given: string | boolean): unknown {
  return typeof given === 'string'
    ? given
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : given;
}

/** JSON text; text that is not JSON stays text, and the schema names the field. */
function json(given: string | boolean): unknown {
  if (typeof given !== 'string') return given;
  try {
    return JSON.parse(given) as unknown;
  } catch {
    return given;
  }
}

const opt = (flags: string, description: string, env?: string): Option => (env ? new Option(flags, description).env(env) : new Option(flags, description));

/** Every server setting a flag or an environment variable can give, in the order `--help` lists them. README's configuration table lists the same. */
export const SERVER_OPTIONS: readonly ServerOption[] = [
  { option: opt('--config <file>', 'JSON config file with any ServerConfigSchema fields; flags and environment variables override it', 'POBOX_CONFIG'), token: true },
  {
    option: opt('--data-dir <dir>', 'data directory: the embedded store and the generated JWT secret', 'POBOX_DATA_DIR').default(DEFAULTS.dataDir),
    field: 'dataDir',
    token: true,
  },
  { option: opt('--store <engine>', 'lmdb or dynamodb', 'POBOX_STORE').default(DEFAULTS.store), field: 'store', token: true },
  { option: opt('--dynamodb-table <name>', 'DynamoDB table (with --store dynamodb)', 'POBOX_DYNAMODB_TABLE'), field: 'dynamodb.table', token: true },
  { option: opt('--dynamodb-endpoint <url>', 'DynamoDB endpoint, e.g. DynamoDB Local', 'POBOX_DYNAMODB_ENDPOINT'), field: 'dynamodb.endpoint', token: true },
  { option: opt('--dynamodb-region <region>', 'DynamoDB region (default us-east-1)', 'POBOX_DYNAMODB_REGION'), field: 'dynamodb.region', token: true },
  {
    option: opt('--jwt-secrets <list>', 'HS256 secrets, comma-separated: the first signs (pobox token), each verifies; better in the environment than in ps', 'POBOX_JWT_SECRETS'),
    field: 'auth.secrets',
    value: list,
    token: true,
  },
  {
    option: opt('--jwt-public-key <key>', 'Ed25519 public key (JWK JSON or SPKI PEM) verifying tokens minted elsewhere', 'POBOX_JWT_PUBLIC_KEY'),
    field: 'auth.publicKey',
    token: true,
  },
  // PORT, as hosting platforms set it, below POBOX_PORT and --port (listed first, so
  // they override it); hidden: its flag is --port.
  { option: opt('--platform-port <port>', 'port when POBOX_PORT and --port are not given', 'PORT').hideHelp(), field: 'port', value: num },
  { option: opt('--port <port>', 'port to listen on; 0 picks a free one', 'POBOX_PORT').default(DEFAULTS.port), field: 'port', value: num },
  { option: opt('--host <host>', 'address to bind', 'POBOX_HOST').default(DEFAULTS.host), field: 'host' },
  { option: opt('--bus <spec>', 'memory, redis://host:port or redis-cluster://host:port,host:port', 'POBOX_BUS').default(DEFAULTS.bus), field: 'bus' },
  {
    option: opt('--store-worker [on]', 'run the store engine in a worker thread, beside the event loop (on: 1/true/yes/on or 0/false/no/off)', 'POBOX_STORE_WORKER').default(
      DEFAULTS.storeWorker,
    ),
    field: 'storeWorker',
    value: bool,
  },
  { option: opt('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent', 'POBOX_LOG_LEVEL').default(DEFAULTS.logLevel), field: 'logLevel' },
  {
    option: opt('--demo [on]', 'serve the demo page at / and mint demo tokens (on: 1/true/yes/on or 0/false/no/off; unset: on for lmdb on a loopback host)', 'POBOX_DEMO'),
    field: 'demo',
    value: bool,
  },
  { option: opt('--no-demo', 'never serve the demo page') },
  {
    option: opt('--wakeup-url <url>', 'POST {user, devices} here when a message is stored for a user with no connected device', 'POBOX_WAKEUP_URL'),
    field: 'wakeupHook.url',
  },
  {
    option: opt('--api-keys <json>', 'backend API keys, a JSON array of {key, name, scopes}; better in the environment than in ps', 'POBOX_API_KEYS'),
    field: 'auth.apiKeys',
    value: json,
  },
];

/** Add the server options to a command: all of them for `serve`, those marked `token` for `token`. */
export function addServerOptions(cmd: Command, which: 'serve' | 'token'): Command {
  for (const o of SERVER_OPTIONS) if (which === 'serve' || o.token) cmd.addOption(o.option);
  return cmd;
}

function setPath(target: Plain, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    if (!isPlain(node[key])) node[key] = {};
    node = node[key] as Plain;
  }
  node[path[path.length - 1]!] = value;
}

function isPlain(v: unknown): v is Plain {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Later sources win field by field; arrays are replaced, not merged. */
export function mergeConfig(...sources: Plain[]): Plain {
  const out: Plain = {};
  for (const src of sources) {
    for (const [k, v] of Object.entries(src)) {
      if (v === undefined) continue;
      out[k] = isPlain(v) && isPlain(out[k]) ? mergeConfig(out[k] as Plain, v) : v;
    }
  }
  return out;
}

export function readConfigFile(path: string): Plain {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new PoboxError('BAD_REQUEST', `cannot read config file ${path}: ${(err as Error).message}`, { field: 'config' });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new PoboxError('BAD_REQUEST', `config file ${path} is not valid JSON: ${(err as Error).message}`, { field: 'config' });
  }
  if (!isPlain(parsed)) throw new PoboxError('BAD_REQUEST', `config file ${path} must hold a JSON object`, { field: 'config' });
  return parsed;
}

/**
 * The validated config of a parsed command whose options came from addServerOptions:
 * the config file, then what commander took from flags and environment variables (its
 * own defaults are only shown in --help: the schema's defaults apply), then `overrides`.
 */
export function serverConfigOf(cmd: Command, overrides: Plain = {}): ServerConfig {
  const given: Plain = {};
  /** Config field -> the flag or environment variable that set it, for the error message. */
  const sources = new Map<string, string>();
  for (const o of SERVER_OPTIONS) {
    const key = o.option.attributeName();
    if (!o.field || !cmd.options.includes(o.option)) continue;
    const source = cmd.getOptionValueSource(key);
    const raw = cmd.getOptionValue(key) as string | boolean | undefined;
    // An empty environment variable counts as unset, as shells and compose files leave them.
    if (raw === undefined || (source !== 'cli' && source !== 'env') || (source === 'env' && raw === '')) continue;
    setPath(given, o.field.split('.'), o.value ? o.value(raw) : raw);
    sources.set(o.field, source === 'cli' ? o.option.long! : `env ${o.option.envVar}`);
  }
  const file = cmd.getOptionValue('config') as string | undefined;
  const merged = mergeConfig(file ? readConfigFile(file) : {}, given, overrides);
  const result = ServerConfigSchema.safeParse(merged);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    const from = [...sources].find(([field]) => path === field || path.startsWith(field + '.'))?.[1];
    return from ? { ...issue, message: `${issue.message} (from ${from})` } : issue;
  });
  throw badInputError(new z.ZodError(issues), { what: 'server config', allIssues: true });
}

/**
 * The config `pobox serve` would run with, for library users and tests: `argv` as the
 * command takes it (e.g. `['--port', '0']`), `env` in place of process.env, `overrides`
 * above everything (a config object, as the file holds).
 */
export function loadServerConfig(opts: { argv?: readonly string[]; env?: NodeJS.ProcessEnv; overrides?: Plain } = {}): ServerConfig {
  const cmd = addServerOptions(new Command('pobox serve'), 'serve')
    .exitOverride()
    .configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
  const env = opts.env ?? process.env;
  // Commander reads process.env while it parses (synchronously): it sees `env` for that time.
  const saved = process.env;
  process.env = env;
  try {
    cmd.parse([...(opts.argv ?? [])], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) throw new PoboxError('BAD_REQUEST', `invalid server config: ${err.message.replace(/^error: /, '')}`);
    throw err;
  } finally {
    process.env = saved;
  }
  return serverConfigOf(cmd, opts.overrides);
}
