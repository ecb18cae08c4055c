/**
 * The fuzzer's inputs against a real server in this process (lmdb in a temp dir): HTTP
 * requests through the router and its schemas, raw bytes through Node's HTTP parser, and
 * WebSocket sessions of mutated frames. Every answer must come (no hang), be typed, and
 * never be a 5xx or INTERNAL. `npm run fuzz` runs the same inputs by the million against
 * a `pobox serve` process (bench/fuzz.ts).
 */
import { strict as assert } from 'node:assert';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { isServerFailure, resolveCredential, runHttp, runRaw, runWsSession, type FuzzSecrets } from '../../bench/lib/fuzz-client.js';
import { httpInput, rawHttpRequest, validId, wsSession } from '../../bench/lib/fuzz-inputs.js';
import { ADMIN_KEY, SECRET, SEND_KEY, startTestServer, type TestServer } from '../gateway/helpers.js';

const secrets: FuzzSecrets = { secret: SECRET, sendKey: SEND_KEY, adminKey: ADMIN_KEY };
/** An answer slower than this counts as a hang (generous: the machine is shared). */
const DEADLINE_MS = 15_000;
const users = fc.tuple(fc.constantFrom('fz-a', 'fz-b', 'fz-c'), fc.constantFrom('d1', 'd2'));

let server: TestServer;
before(async () => {
  // The connection-rate limiter has its own tests; here it would only turn sessions away.
  server = await startTestServer({ limits: { connectRate: { perSecond: 10_000, burst: 10_000 } } });
});
after(() => server.stop());

test('HTTP requests of any shape get a typed answer, never a 5xx', async () => {
  await fc.assert(
    fc.asyncProperty(httpInput, users, async (input, [user, device]) => {
      const credential = await resolveCredential(input.auth, secrets, user, device);
      const r = await runHttp(server.url, input, credential, DEADLINE_MS);
      assert.equal(r.hang, false, 'no answer within the deadline');
      if (r.status === -1) return; // the HTTP client itself refused the request
      assert.ok(r.status > 0, `no answer: ${r.sample}`);
      assert.ok(!isServerFailure(r.status, r.typed), `${r.status} ${r.code ?? ''} ${r.sample ?? ''}`);
      assert.ok(r.typed, `untyped ${r.status}: ${r.sample}`);
    }),
    { numRuns: 150 },
  );
});

test('a user token sending a valid body is answered 201 with the durable seq', async () => {
  await fc.assert(
    fc.asyncProperty(validId(128), validId(), fc.string({ minLength: 1, maxLength: 100 }), async (id, to, body) => {
      const token = await server.token('fz-sender', 'd1');
      const r = await runHttp(
        server.url,
        { method: 'POST', path: '/v1/messages', auth: undefined, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id, to, body }) },
        token,
        DEADLINE_MS,
      );
      assert.ok(r.status === 201 || r.status === 200, `status ${r.status} ${r.code ?? ''}`);
    }),
    { numRuns: 40 },
  );
});

test('raw bytes on the HTTP port never crash or hang the server, nor get a 5xx', async () => {
  await fc.assert(
    fc.asyncProperty(rawHttpRequest, async (bytes) => {
      const r = await runRaw('127.0.0.1', server.port, bytes, DEADLINE_MS);
      assert.equal(r.hang, false, `no answer within the deadline to ${JSON.stringify(bytes.slice(0, 80))}`);
      assert.ok(!isServerFailure(r.status, r.typed), `${r.status}: ${r.sample}`);
    }),
    { numRuns: 60 },
  );
  // The server still serves.
  const ok = await fetch(`${server.url}/healthz`);
  assert.equal(ok.status, 200);
});

test('WebSocket sessions of mutated frames get typed frames and documented close codes, never INTERNAL', async () => {
  await fc.assert(
    fc.asyncProperty(wsSession, users, async (session, [user, device]) => {
      const token = await resolveCredential(session.auth, secrets, user, device);
      const r = await runWsSession(server.wsUrl, session, token, DEADLINE_MS);
      assert.equal(r.hang, false, `no answer within the deadline; answers ${r.answers.join(',')}`);
      assert.deepEqual(r.untyped, []);
      assert.equal(r.upgradeStatus, undefined, 'refusals are close codes after the upgrade');
      assert.ok(!r.answers.includes('error:INTERNAL'), r.answers.join(','));
      assert.notEqual(r.close, 1011);
    }),
    { numRuns: 40 },
  );
});

test("requests refused by Node's HTTP parser get the typed JSON error body too", async () => {
  for (const bytes of [
    'FOO /healthz HTTP/1.1\r\nhost: x\r\n\r\n',
    `GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`,
    'GET /healthz HTTP/1.1\r\nbad header\r\n\r\n',
  ]) {
    const r = await runRaw('127.0.0.1', server.port, bytes, DEADLINE_MS);
    assert.ok(r.typed, `untyped answer to ${JSON.stringify(bytes.slice(0, 40))}: ${r.sample}`);
  }
});
