/**
 * Hostile inputs for pobox, as fast-check arbitraries: WebSocket frames (valid, mutated,
 * garbage, oversized), HTTP requests (routes with bad parameters, bodies, credentials)
 * and raw bytes for Node's HTTP parser.
 *
 * One set of generators serves two users: the property tests in test/fuzz (a few hundred
 * runs each, inside `npm test`) and the long run against a live `pobox serve`
 * (bench/fuzz.ts, a million inputs). Each input is reproducible from (seed, index).
 *
 * Credentials are placeholders (`$user`, `$key:send`, ...) that the runner replaces with
 * real ones, so the generators need no secret and the findings never contain one.
 */
import fc from 'fast-check';

// ---- building blocks ----------------------------------------------------------------

/** Ids from the allowed alphabet (A-Z a-z 0-9 . _ : @ -, first char alphanumeric). */
export const validId = (max = 64): fc.Arbitrary<string> =>
  fc
    .tuple(
      fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'),
      fc.string({ unit: fc.constantFrom(...'abcxyz019._:@-'), maxLength: Math.min(12, max - 1) }),
    )
    .map(([a, b]) => a + b);

/** Strings that are almost ids, or nothing like ids. */
export const badId: fc.Arbitrary<string> = fc.oneof(
  fc.constant(''),
  fc.constant('-starts-with-dash'),
  fc.constant('has space'),
  fc.constant('a/slash'),
  fc.constant('../../etc/passwd'),
  fc.constant('%00'),
  fc.constant('\u0000'),
  fc.constant('é'),
  fc.constant('__proto__'),
  fc.constant('constructor'),
  fc.constant('a'.repeat(65)),
  fc.constant('a'.repeat(129)),
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
);

/** Numbers a schema must refuse or handle: negative, fractional, huge, unsafe, infinite. */
export const weirdNumber: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(-1, 0, 0.5, -0, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, Number.MAX_SAFE_INTEGER, Number.MAX_VALUE, Number.MIN_VALUE, 1e308),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

/** Anything that may stand where a field's value should be. */
export const weirdValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: weirdNumber },
  { weight: 2, arbitrary: badId },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false, [], {}, '', '0', 'NaN') },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.array(fc.string({ maxLength: 4 }), { maxLength: 3 }) },
);

// ---- WebSocket frames -----------------------------------------------------------------

/** A frame object the server must accept (given a session in the right state). */
export const validFrame: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record(
    { type: fc.constant('hello'), protocol: fc.constant(1), epoch: fc.string({ minLength: 1, maxLength: 64 }), lastSeq: fc.nat() },
    { noNullPrototype: true, requiredKeys: ['type'] },
  ),
  fc.record({ type: fc.constant('ack'), upTo: fc.nat({ max: 1000 }) }, { noNullPrototype: true }),
  fc.record(
    {
      type: fc.constant('send'),
      id: validId(128),
      to: validId(),
      toDevice: validId(),
      body: fc.string({ minLength: 1, maxLength: 200 }),
      ttlSeconds: fc.integer({ min: 1, max: 86_400 }),
      receipt: fc.boolean(),
    },
    { noNullPrototype: true, requiredKeys: ['type', 'id', 'to', 'body'] },
  ),
  fc.record({ type: fc.constant('ping'), t: fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => (x === 0 ? 0 : x)) }, { noNullPrototype: true, requiredKeys: ['type'] }),
);

/** One structural change to a valid frame object. */
const objectMutation: fc.Arbitrary<(o: Record<string, unknown>) => unknown> = fc.oneof(
  // Replace one field's value (chosen by position) with something odd.
  fc.tuple(fc.nat(), weirdValue).map(([i, v]) => (o: Record<string, unknown>) => {
    const keys = Object.keys(o);
    return { ...o, [keys[i % keys.length]!]: v };
  }),
  // Drop one field.
  fc.nat().map((i) => (o: Record<string, unknown>) => {
    const keys = Object.keys(o);
    const copy = { ...o };
    delete copy[keys[i % keys.length]!];
    return copy;
  }),
  // Add a field the protocol does not know, or a prototype-ish one.
  // (fromEntries makes even `__proto__` an own, serialised property.)
  fc.tuple(fc.constantFrom('from', '__proto__', 'constructor', 'extra', 'seq', 'user', 'device'), weirdValue).map(
    ([k, v]) =>
      (o: Record<string, unknown>) =>
        Object.fromEntries([[k, v], ...Object.entries(o)]) as unknown,
  ),
  // Another frame type's name, or none at all.
  fc
    .oneof(fc.constantFrom('hello', 'ack', 'send', 'ping', 'welcome', 'message', 'toString', '__proto__', 'hasOwnProperty', ''), fc.string({ maxLength: 8 }))
    .map((t) => (o: Record<string, unknown>) => ({ ...o, type: t })),
  // Wrapped in an array, or nested.
  fc.constant((o: Record<string, unknown>) => [o]),
  fc.constant((o: Record<string, unknown>) => ({ type: o['type'], frame: o })),
);

/** One change to a frame's JSON text: a character flipped, removed, doubled, or the text cut. */
const textMutation: fc.Arbitrary<(s: string) => string> = fc.oneof(
  fc.tuple(fc.nat(), fc.string({ unit: 'binary', minLength: 1, maxLength: 3 })).map(([i, c]) => (s: string) => {
    const at = i % (s.length + 1);
    return s.slice(0, at) + c + s.slice(at + 1);
  }),
  fc.nat().map((i) => (s: string) => s.slice(0, i % (s.length + 1))),
  fc.nat().map((i) => (s: string) => {
    const at = i % (s.length + 1);
    return s.slice(0, at) + s.slice(at, at + 8).repeat(2) + s.slice(at + 8);
  }),
);

export type WsInput = { kind: 'text'; text: string } | { kind: 'binary'; bytes: Uint8Array };

const text = (t: string): WsInput => ({ kind: 'text', text: t });

/** Oversized or deeply nested texts: rare, because they are expensive to send. */
const hugeText: fc.Arbitrary<string> = fc.oneof(
  fc.integer({ min: 64 * 1024, max: 600 * 1024 }).map((n) => JSON.stringify({ type: 'send', id: 'big', to: 'bob', body: 'x'.repeat(n) })),
  fc.integer({ min: 1000, max: 200_000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
  fc.integer({ min: 1000, max: 100_000 }).map((n) => `{"type":"ping","t":${'9'.repeat(n)}}`),
  fc.integer({ min: 1000, max: 5000 }).map((n) => `{"type":"send",${Array.from({ length: n }, (_, i) => `"k${i}":1`).join(',')}}`),
);

/** Any WebSocket message a client might send, weighted towards almost-valid frames. */
export const wsInput: fc.Arbitrary<WsInput> = fc.oneof(
  { weight: 12, arbitrary: validFrame.map((f) => text(JSON.stringify(f))) },
  { weight: 24, arbitrary: fc.tuple(validFrame, objectMutation).map(([f, m]) => text(JSON.stringify(m(f)) ?? 'null')) },
  { weight: 16, arbitrary: fc.tuple(validFrame, textMutation).map(([f, m]) => text(m(JSON.stringify(f)))) },
  { weight: 8, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => text(JSON.stringify(v) ?? 'null')) },
  { weight: 8, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }).map(text) },
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes): WsInput => ({ kind: 'binary', bytes })) },
  // About 1 in 70: each costs as much as hundreds of ordinary frames to build and send.
  { weight: 1, arbitrary: hugeText.map(text) },
);

/** What a WebSocket connection opens with: the credential and the first frames. */
export interface WsSession {
  /** `$user` (a valid token), `$expired`, `$wrong-secret`, `$alg-none`, `$key:admin`, none, or garbage. */
  auth: string | undefined;
  /** Say a valid hello first, so later frames reach the send/ack paths. */
  hello: boolean;
  frames: WsInput[];
}

export const credential: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 12, arbitrary: fc.constant('$user') },
  { weight: 1, arbitrary: fc.constantFrom(undefined, '$expired', '$wrong-secret', '$alg-none', '$key:send', '$key:admin', '$bad-claims', '') },
  { weight: 1, arbitrary: fc.string({ maxLength: 60 }) },
);

/** A session of up to `maxFrames` frames (the server closes after maxInvalidFrames bad ones). */
export const wsSessionOf = (maxFrames: number): fc.Arbitrary<WsSession> =>
  fc.record({
    auth: credential,
    // Mostly a hello first (80%), so most frames reach the send and ack paths.
    hello: fc.integer({ min: 0, max: 9 }).map((n) => n < 8),
    frames: fc.array(wsInput, { minLength: 1, maxLength: maxFrames, size: 'max' }),
  });

export const wsSession: fc.Arbitrary<WsSession> = wsSessionOf(12);

// ---- HTTP requests ------------------------------------------------------------------

export interface HttpInput {
  method: string;
  path: string;
  /** Credential placeholder as in WsSession, or undefined for none. */
  auth: string | undefined;
  headers: Record<string, string>;
  body: string | Uint8Array | undefined;
}

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'] as const;

const pathSegment: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: validId() },
  { weight: 2, arbitrary: badId.map((s) => encodeURIComponent(s)) },
  { weight: 1, arbitrary: fc.constantFrom('%', '%zz', '%E0%A4%A', '..', '.', '%2F', '%00', 'a%20b', '$user') },
);

const query: fc.Arbitrary<string> = fc.oneof(
  fc.constant(''),
  fc
    .record(
      { after: fc.oneof(fc.nat().map(String), badId, fc.constant('99999999999999999')), limit: fc.oneof(fc.nat({ max: 2000 }).map(String), badId, fc.constant('0')) },
      { noNullPrototype: true, requiredKeys: [] },
    )
    .map((q) => `?${new URLSearchParams(q as Record<string, string>).toString()}`),
  fc.string({ maxLength: 30 }).map((s) => `?${s}`),
);

const route: fc.Arbitrary<{ method: string; path: string }> = fc.oneof(
  { weight: 5, arbitrary: fc.constant({ method: 'POST', path: '/v1/messages' }) },
  { weight: 2, arbitrary: query.map((q) => ({ method: 'GET', path: `/v1/messages${q}` })) },
  { weight: 3, arbitrary: fc.constant({ method: 'POST', path: '/v1/ack' }) },
  { weight: 2, arbitrary: pathSegment.map((u) => ({ method: 'GET', path: `/v1/users/${u}/devices` })) },
  { weight: 2, arbitrary: fc.tuple(pathSegment, pathSegment).map(([u, d]) => ({ method: 'PUT', path: `/v1/users/${u}/devices/${d}` })) },
  { weight: 1, arbitrary: fc.tuple(pathSegment, pathSegment).map(([u, d]) => ({ method: 'DELETE', path: `/v1/users/${u}/devices/${d}` })) },
  { weight: 1, arbitrary: pathSegment.map((u) => ({ method: 'GET', path: `/v1/users/${u}/stats` })) },
  { weight: 1, arbitrary: pathSegment.map((u) => ({ method: 'DELETE', path: `/v1/users/${u}/messages` })) },
  { weight: 1, arbitrary: fc.constantFrom('/healthz', '/readyz', '/metrics', '/', '/ws', '/v1', '/nope').map((path) => ({ method: 'GET', path })) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom(...METHODS), fc.constantFrom('/v1/messages', '/v1/ack', '/v1/users/a/devices', '/v1/users/a/devices/b', '/healthz'))
      .map(([method, path]) => ({ method, path })),
  },
  { weight: 1, arbitrary: fc.array(pathSegment, { minLength: 1, maxLength: 6 }).map((segs) => ({ method: 'GET', path: `/${segs.join('/')}` })) },
);

/** Valid bodies for the JSON routes, before mutation. */
const validBody: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record(
    {
      id: validId(128),
      to: validId(),
      from: validId(),
      toDevice: validId(),
      body: fc.string({ minLength: 1, maxLength: 200 }),
      ttlSeconds: fc.integer({ min: 1, max: 86_400 }),
      receipt: fc.boolean(),
    },
    { noNullPrototype: true, requiredKeys: ['id', 'to', 'body'] },
  ),
  fc.record({ upTo: fc.nat({ max: 1000 }) }, { noNullPrototype: true }),
  fc.record({ start: fc.constantFrom('auto', 'oldest', 'head') }, { noNullPrototype: true, requiredKeys: [] }),
);

const bodyMutation: fc.Arbitrary<(o: Record<string, unknown>) => unknown> = fc.oneof(
  fc.constant((o: Record<string, unknown>) => o),
  fc.tuple(fc.nat(), weirdValue).map(([i, v]) => (o: Record<string, unknown>) => {
    const keys = Object.keys(o);
    return keys.length === 0 ? { start: v } : { ...o, [keys[i % keys.length]!]: v };
  }),
  fc.nat().map((i) => (o: Record<string, unknown>) => {
    const copy = { ...o };
    delete copy[Object.keys(o)[i % Math.max(1, Object.keys(o).length)]!];
    return copy;
  }),
  fc.constant((o: Record<string, unknown>) => [o]),
);

const httpBody: fc.Arbitrary<string | Uint8Array | undefined> = fc.oneof(
  { weight: 24, arbitrary: fc.tuple(validBody, bodyMutation).map(([b, m]) => JSON.stringify(m(b)) ?? 'null') },
  { weight: 8, arbitrary: fc.tuple(validBody, textMutation).map(([b, m]) => m(JSON.stringify(b))) },
  { weight: 4, arbitrary: fc.constant(undefined) },
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null') },
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 200 }) },
  { weight: 4, arbitrary: fc.constantFrom('', ' ', 'null', '[]', '{}', '{"__proto__":{"x":1}}', '"str"', '1e999') },
  // About 1 in 50: oversized bodies (413).
  { weight: 1, arbitrary: fc.integer({ min: 600 * 1024, max: 1024 * 1024 }).map((n) => JSON.stringify({ id: 'big', to: 'bob', body: 'x'.repeat(n) })) },
);

const httpHeaders: fc.Arbitrary<Record<string, string>> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ 'content-type': 'application/json' }) },
  { weight: 1, arbitrary: fc.constant({}) },
  {
    weight: 1,
    arbitrary: fc.record(
      {
        'content-type': fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', ''),
        'x-request-id': fc.oneof(
          fc.string({ maxLength: 80 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')),
          fc.constant('a'.repeat(65)),
        ),
        accept: fc.constantFrom('*/*', 'text/html', ''),
      },
      { noNullPrototype: true, requiredKeys: [] },
    ),
  },
);

export const httpInput: fc.Arbitrary<HttpInput> = fc
  .record({ route, auth: credential, headers: httpHeaders, body: httpBody, oddMethod: fc.option(fc.constantFrom(...METHODS, 'get', 'PROPFIND'), { freq: 10 }) })
  .map(({ route: r, auth, headers, body, oddMethod }) => ({
    method: oddMethod ?? r.method,
    path: r.path,
    auth,
    headers,
    // GET/HEAD bodies are not sent by fetch-like clients; the raw fuzzer covers them.
    body: r.method === 'GET' || r.method === 'HEAD' || oddMethod === 'GET' || oddMethod === 'HEAD' ? undefined : body,
  }));

// ---- raw bytes for Node's HTTP parser -------------------------------------------------

/** A raw request as the socket sees it: mostly well-formed requests with one part broken. */
export const rawHttpRequest: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.constantFrom('GET /healthz HTTP/1.1', 'POST /v1/messages HTTP/1.1', 'GET /v1/messages HTTP/1.1'), textMutation)
      .map(([line, m]) => `${m(line)}\r\nhost: x\r\n\r\n`),
  },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 300 }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'FOO /healthz HTTP/1.1\r\nhost: x\r\n\r\n',
      'GET /healthz HTTP/9.9\r\nhost: x\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nhost: x\r\ncontent-length: -1\r\n\r\n',
      'POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello',
      'POST /v1/messages HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n',
      'POST /v1/messages HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n0\r\n\r\n',
      'GET /\x00 HTTP/1.1\r\nhost: x\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nbad header\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nhost: x\r\nx: \x01\r\n\r\n',
      'GET http://[::1 HTTP/1.1\r\nhost: x\r\n\r\n',
      '\r\n\r\n\r\n',
      'GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: bad\r\n\r\n',
      'GET /ws?token=%zz HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      'GET /nope HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n',
    ),
  },
  { weight: 1, arbitrary: fc.integer({ min: 8 * 1024, max: 40 * 1024 }).map((n) => `GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(n)}\r\n\r\n`) },
  { weight: 1, arbitrary: fc.integer({ min: 8 * 1024, max: 40 * 1024 }).map((n) => `GET /${'a'.repeat(n)} HTTP/1.1\r\nhost: x\r\n\r\n`) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 100, max: 3000 }).map((n) => `GET /healthz HTTP/1.1\r\nhost: x\r\n${Array.from({ length: n }, (_, i) => `h${i}: v`).join('\r\n')}\r\n\r\n`),
  },
);

/**
 * `count` values of `arb` for one batch of the long run: batch `b` of seed `s` is always
 * the same inputs, so a finding is replayed with `sampleBatch(arb, s, b, count)[i]`.
 */
export function sampleBatch<T>(arb: fc.Arbitrary<T>, seed: number, batch: number, count: number): T[] {
  return fc.sample(arb, { seed: (seed * 1_000_003 + batch) | 0, numRuns: count });
}
