/**
 * Export and import end to end, with the real CLI (`pobox export` / `pobox import` as
 * processes), real servers and the SDK over real sockets: a mailbox exported from one
 * embedded server (over HTTP while it runs, and from its data dir once stopped) and
 * imported into a fresh data dir, and into a server on DynamoDB Local, is drained by the
 * SDK exactly as the original: same seqs, ids, senders, times and bodies (bytes
 * included), device by device.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { connect, type ClientMessage } from '../../src/client/index.js';
import { openDynamoDbStore, type DynamoDbStore } from '../../src/store/dynamodb/index.js';
import { startDynamoDbLocal, type DynamoDbLocal } from '../../tools/dynamodb-local.js';
import { startOpsServer, type OpsServer } from '../ops/server-helpers.js';
import { runCli, runJson } from '../support/cli.js';
import { tempDir, type TempDir } from '../support/temp-dir.js';

const T = { timeout: 600_000 };

/** Everything the SDK hands a device until it is caught up (nothing is acked: the mailbox stays as it is). */
async function drain(server: OpsServer, user: string, device: string, resume?: { epoch: string; lastSeq: number }): Promise<unknown[]> {
  const got: ClientMessage[] = [];
  const client = connect([server.server.wsUrl], await server.token(user, device), {
    WebSocket,
    ack: 'manual',
    backoffBaseMs: 20,
    backoffMaxMs: 200,
    ...(resume ? { resume } : {}),
  });
  try {
    await new Promise<void>((resolve, reject) => {
      client.on('message', (m) => void got.push(m));
      client.once('caughtUp', () => resolve());
      client.once('error', reject);
    });
  } finally {
    client.close();
  }
  return got.map((m) => ({ ...m, body: typeof m.body === 'string' ? m.body : `bytes:${Buffer.from(m.body).toString('hex')}` }));
}

/** The lines of an export, with the one field that differs between two exports of the same mailbox (exportedAt) blanked. */
function comparable(text: string): string[] {
  return text
    .trimEnd()
    .split('\n')
    .map((l, i) => (i === 0 ? l.replace(/"exportedAt":"[^"]+"/, '"exportedAt":""') : l));
}

describe('export and import with the CLI, drained by the SDK (lmdb -> fresh data dir, lmdb -> DynamoDB Local)', () => {
  let ddb: DynamoDbLocal;
  const dirs: TempDir[] = [];
  const servers: OpsServer[] = [];
  let ddbStore: DynamoDbStore | undefined;

  before(async () => {
    ddb = await startDynamoDbLocal();
  });
  after(async () => {
    for (const s of servers) await s.close().catch(() => undefined);
    await ddbStore?.close();
    await ddb?.stop();
    for (const d of dirs) await d.remove();
  });

  it('an export imported elsewhere drains identically, device by device', T, async () => {
    const files = tempDir('pobox-export-files-');
    dirs.push(files);
    const a = await startOpsServer();
    servers.push(a);
    const po = a.server.postOffice;

    // Bob's mailbox: text and bytes, messages for one device, acks that leave gaps.
    await po.registerDevice('bob', 'phone');
    for (let i = 1; i <= 10; i++) await po.send({ to: 'bob', from: 'alice', id: `early-${i}`, body: `early ${i}` });
    await po.registerDevice('bob', 'tablet'); // at the head: 10
    for (let i = 1; i <= 40; i++) {
      const body = i % 4 === 0 ? randomBytes((i * 37) % 300) : `message ${i} ✓`;
      const toDevice = i % 9 === 0 ? 'tablet' : i % 11 === 0 ? 'phone' : undefined;
      await po.send({ to: 'bob', from: i % 3 === 0 ? 'carol' : 'alice', id: `m-${i}`, body, ...(toDevice ? { toDevice } : {}) });
    }
    await po.ack('bob', 'tablet', 30);
    await po.ack('bob', 'phone', 5);
    const pending = (await po.stats('bob')).pending;
    const expected = { phone: await drain(a, 'bob', 'phone'), tablet: await drain(a, 'bob', 'tablet') };
    assert.ok(expected.phone.length > 30 && expected.tablet.length > 10, 'both devices have a backlog');

    // Export over HTTP from the running server, to a file and to stdout (with the progress bar on stderr).
    const http = ['--url', a.server.url, '--admin-key', a.adminKey];
    const viaHttp = join(files.path, 'bob-http.ndjson');
    const summary = await runJson<{ user: string; messages: number; devices: number }>(['export', 'bob', ...http, '--out', viaHttp]);
    assert.deepEqual([summary.user, summary.messages, summary.devices], ['bob', pending, 2]);
    const toStdout = await runCli(['export', 'bob', ...http, '--progress']);
    assert.equal(toStdout.code, 0, toStdout.stderr);
    assert.deepEqual(comparable(toStdout.stdout), comparable(readFileSync(viaHttp, 'utf8')), 'stdout holds the export and nothing else');
    assert.match(toStdout.stderr, new RegExp(`${pending}/${pending} messages`), 'the progress bar went to stderr');

    // Stopped: the same export straight from its data dir.
    await a.server.close();
    const viaDir = join(files.path, 'bob-dir.ndjson');
    assert.equal((await runJson<{ messages: number }>(['export', 'bob', '--data-dir', a.dataDir, '--out', viaDir])).messages, pending);
    assert.deepEqual(comparable(readFileSync(viaDir, 'utf8')), comparable(readFileSync(viaHttp, 'utf8')));

    // Into a fresh data dir, then served from it.
    const fresh = tempDir('pobox-import-dir-');
    dirs.push(fresh);
    const imported = await runJson<{ user: string; messages: number; devices: number; lastSeq: number }>(['import', viaDir, '--data-dir', fresh.path]);
    assert.deepEqual([imported.user, imported.messages, imported.devices, imported.lastSeq], ['bob', pending, 2, 50]);
    const b = await startOpsServer({ dataDir: fresh.path });
    servers.push(b);
    assert.deepEqual({ phone: await drain(b, 'bob', 'phone'), tablet: await drain(b, 'bob', 'tablet') }, expected, 'fresh data dir drains the same');
    // Same epoch: a client that had read up to 40 before the move resumes there, not from its cursor.
    const epoch = (JSON.parse(readFileSync(viaDir, 'utf8').split('\n')[0]!) as { epoch: string }).epoch;
    const resumed = await drain(b, 'bob', 'phone', { epoch, lastSeq: 40 });
    assert.deepEqual(
      resumed,
      expected.phone.filter((m) => (m as { seq: number }).seq > 40),
    );
    assert.ok(resumed.length > 0);

    // Into a server on DynamoDB Local, over HTTP.
    const table = await ddb.newTable({ ttl: false });
    ddbStore = await openDynamoDbStore({ engine: 'dynamodb', table, endpoint: ddb.endpoint });
    const c = await startOpsServer({}, { store: ddbStore });
    servers.push(c);
    const toDdb = ['--url', c.server.url, '--admin-key', c.adminKey];
    assert.equal((await runJson<{ messages: number }>(['import', viaHttp, ...toDdb, '--progress'])).messages, pending);
    assert.deepEqual({ phone: await drain(c, 'bob', 'phone'), tablet: await drain(c, 'bob', 'tablet') }, expected, 'DynamoDB drains the same');
    // And it goes on after the imported seqs there.
    const next = await c.server.postOffice.send({ to: 'bob', from: 'alice', id: 'after-import', body: 'next' });
    assert.deepEqual([next.seq, next.duplicate], [51, false]);

    // Twice into the same mailbox: refused, CONFLICT. A truncated file: refused, nothing written.
    let r = await runCli(['import', viaHttp, ...toDdb]);
    assert.deepEqual([r.code, /CONFLICT/.test(r.stderr)], [1, true], r.stderr);
    const cut = join(files.path, 'cut.ndjson');
    writeFileSync(cut, readFileSync(viaHttp, 'utf8').trimEnd().split('\n').slice(0, -1).join('\n') + '\n');
    r = await runCli(['import', cut, '--user', 'carol', ...toDdb]);
    assert.deepEqual([r.code, /BAD_REQUEST: import: truncated/.test(r.stderr)], [2, true], r.stderr);
    assert.deepEqual((await c.server.postOffice.stats('carol')).lastSeq, 0);
    r = await runCli(['export', 'bob', '--data-dir', join(files.path, 'no-such-dir')]);
    assert.deepEqual([r.code, /NOT_FOUND/.test(r.stderr), r.stdout], [1, true, ''], r.stderr);
  });
});
