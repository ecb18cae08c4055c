/**
 * The export and import routes over real HTTP: admin key only, NDJSON out with its
 * content type, a round trip through them, and bad input refused with typed errors
 * (naming the line) that write nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseProm, sample } from '../support/prom-text.js';
import { startOpsServer, type OpsServer } from './server-helpers.js';

describe('GET /v1/users/:user/export and POST /v1/users/:user/import', () => {
  let s: OpsServer;

  before(async () => {
    s = await startOpsServer({ postOffice: { limits: { maxBodyBytes: 1024 } } });
    const po = s.server.postOffice;
    await po.registerDevice('bob', 'phone');
    await po.send({ to: 'bob', from: 'alice', id: 'a1', body: 'hello' });
    await po.send({ to: 'bob', from: 'alice', id: 'a2', body: new Uint8Array([1, 2, 3]) });
  });
  after(() => s?.close());

  const post = async (user: string, body: string, key: string | null = s.adminKey) => {
    const res = await fetch(`${s.server.url}/v1/users/${user}/import`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', ...(key === null ? {} : { authorization: `Bearer ${key}` }) },
      body,
    });
    return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string; field?: string }; messages?: number; user?: string } };
  };

  it('streams a mailbox as NDJSON to an admin key, and an import of it restores it under another user', async () => {
    const res = await s.get('/v1/users/bob/export');
    assert.equal(res.status, 200);
    assert.match(res.type ?? '', /^application\/x-ndjson/);
    const lines = res.text.trimEnd().split('\n');
    assert.deepEqual(
      lines.map((l) => (JSON.parse(l) as { type: string }).type),
      ['pobox-export', 'device', 'message', 'message', 'end'],
    );
    assert.deepEqual(JSON.parse(lines[3]!), { ...(JSON.parse(lines[3]!) as object), seq: 2, body: 'AQID', binary: true });

    const r = await post('carol', res.text);
    assert.equal(r.status, 201);
    assert.deepEqual([r.body.user, r.body.messages], ['carol', 2]);
    const [bob, carol] = [await s.server.postOffice.stats('bob'), await s.server.postOffice.stats('carol')];
    // oldestAgeMs is measured at each call: the two calls are a moment apart.
    assert.deepEqual({ ...carol, user: 'bob', oldestAgeMs: null }, { ...bob, oldestAgeMs: null });
    assert.ok(carol.oldestAgeMs !== null && bob.oldestAgeMs !== null && carol.oldestAgeMs >= bob.oldestAgeMs, 'the imported messages keep their send times');
    // The pending gauges count what the import brought in.
    const m = parseProm((await s.get('/metrics')).text);
    assert.deepEqual([sample(m, 'pobox_pending_messages'), sample(m, 'pobox_pending_bytes')], [bob.pending * 2, bob.pendingBytes * 2]);
    // Again: the mailbox is not empty any more.
    const again = await post('carol', res.text);
    assert.deepEqual([again.status, again.body.error?.code], [409, 'CONFLICT']);
  });

  it('needs an admin key; an unknown user or a bad id is a typed error, not a stream', async () => {
    assert.equal((await s.get('/v1/users/bob/export', null)).status, 401);
    assert.equal((await s.get('/v1/users/bob/export', s.sendKey)).status, 403);
    const unknown = await s.get('/v1/users/nobody/export');
    assert.deepEqual([unknown.status, (JSON.parse(unknown.text) as { error: { code: string } }).error.code], [404, 'NOT_FOUND']);
    assert.equal((await s.get('/v1/users/not%20a%20user/export')).status, 400);
    const exported = (await s.get('/v1/users/bob/export')).text;
    assert.equal((await post('dave', exported, null)).status, 401);
    assert.equal((await post('dave', exported, s.sendKey)).status, 403);
    assert.equal((await post('not%20a%20user', exported)).status, 400);
  });

  it('refuses bad, truncated and oversized imports with the line at fault, and writes nothing', async () => {
    const lines = (await s.get('/v1/users/bob/export')).text.trimEnd().split('\n');
    const cases: Array<[string, string, number, string, RegExp]> = [
      ['empty body', '', 400, 'BAD_REQUEST', /empty/],
      ['not JSON', 'hello\n', 400, 'BAD_REQUEST', /line 1: not valid JSON/],
      ['truncated', lines.slice(0, -1).join('\n') + '\n', 400, 'BAD_REQUEST', /truncated/],
      ['bad base64', [...lines.slice(0, 3), lines[3]!.replace('AQID', 'AQ!D'), lines[4]!].join('\n'), 400, 'BAD_REQUEST', /line 4: body/],
      ['a line over the limit', [lines[0]!, lines[1]!, `{"type":"message","body":"${'x'.repeat(4000)}"}`].join('\n'), 413, 'PAYLOAD_TOO_LARGE', /line 3 is longer/],
      [
        'a body over the limit',
        [lines[0]!, lines[1]!, lines[2]!.replace('"hello"', `"${'y'.repeat(1025)}"`), ...lines.slice(3)].join('\n'),
        413,
        'PAYLOAD_TOO_LARGE',
        /line 3: .*1025 bytes/,
      ],
    ];
    for (const [what, body, status, code, message] of cases) {
      const r = await post('erin', body);
      assert.deepEqual([r.status, r.body.error?.code], [status, code], `${what}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.error!.message, message, what);
      const st = await s.server.postOffice.stats('erin');
      assert.deepEqual([st.epoch, st.lastSeq, st.devices.length], ['', 0, 0], `${what}: nothing written`);
    }
    // The server still answers normally after a refused body.
    assert.equal((await post('erin', lines.join('\n'))).status, 201);
  });
});
