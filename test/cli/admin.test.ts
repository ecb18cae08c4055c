/**
 * The admin CLI against a running server (API keys over HTTP) and against the data dir
 * of the same server once stopped: the same commands, the same answers.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MailboxStats } from '../../src/core/types.js';
import type { MailboxTotals } from '../../src/metrics/totals.js';
import { runCli, runCliProcess, runJson } from '../support/cli.js';
import { parseProm, sample } from '../support/prom-text.js';
import { startOpsServer } from '../ops/server-helpers.js';

test('admin CLI: against a running server, then directly on its stopped data dir', async () => {
  const s = await startOpsServer();
  let stopped = false;
  try {
    const http = ['--url', s.server.url, '--admin-key', s.adminKey];
    const send = ['--url', s.server.url, '--api-key', s.sendKey];

    // send: backend key with the send scope; the admin key alone may not send.
    for (let i = 1; i <= 3; i++) {
      const r = await runJson<{ seq: number; duplicate: boolean; durable: boolean }>(['send', ...send, '--to', 'bob', '--from', 'alice', '--id', `m${i}`, `hello ${i}`]);
      assert.deepEqual([r.seq, r.duplicate, r.durable], [i, false, true]);
    }
    assert.equal((await runJson<{ duplicate: boolean }>(['send', ...send, '--to', 'bob', '--from', 'alice', '--id', 'm1', 'hello 1'])).duplicate, true);
    let r = await runCli(['send', '--url', s.server.url, '--api-key', s.adminKey, '--to', 'bob', 'x']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /FORBIDDEN/);

    // devices: the first device starts at the beginning, a later one at the head.
    assert.deepEqual(await runJson(['devices', 'bob', 'add', 'phone', ...http]), {
      user: 'bob',
      device: 'phone',
      cursor: 0,
      registeredAt: (await s.server.postOffice.listDevices('bob'))[0]!.registeredAt,
      created: true,
    });
    assert.equal((await runJson<{ cursor: number }>(['devices', 'bob', 'add', 'tablet', ...http])).cursor, 3);
    const listed = await runJson<{ devices: Array<{ device: string; cursor: number }> }>(['devices', 'bob', ...http]);
    assert.deepEqual(
      listed.devices.map((d) => [d.device, d.cursor]),
      [
        ['phone', 0],
        ['tablet', 3],
      ],
    );

    // inspect: JSON for scripts, a table for people.
    const st = await runJson<MailboxStats>(['inspect', 'bob', ...http]);
    assert.deepEqual([st.pending, st.pendingBytes, st.lastSeq], [3, 21, 3]);
    assert.ok(st.oldestAgeMs !== null && st.oldestAgeMs >= 0);
    r = await runCli(['inspect', 'bob', ...http]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^pending\s+3$/m);
    assert.match(r.stdout, /^DEVICE\s+CURSOR\s+BEHIND\s+REGISTERED$/m);
    assert.match(r.stdout, /^phone\s+0\s+3\s+\d{4}-/m);

    // The flags' environment variables: POBOX_URL and POBOX_ADMIN_KEY stand for --url and --admin-key.
    r = await runCliProcess(['inspect', 'bob', '--json'], { POBOX_URL: s.server.url, POBOX_ADMIN_KEY: s.adminKey });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as MailboxStats).pending, 3);

    // purge --device: the phone skips its backlog; the tablet was at the head, so all 3 go.
    assert.deepEqual(await runJson(['purge', 'bob', '--device', 'phone', ...http]), { user: 'bob', device: 'phone', cursor: 3, deleted: 3 });
    // Two more, and totals over several users walked two at a time.
    for (const to of ['bob', 'carol', 'dave', 'erin']) await runJson(['send', ...send, '--to', to, '--from', 'alice', `for ${to}`]);
    const totals = await runJson<MailboxTotals>(['stats', '--page-size', '2', ...http]);
    assert.deepEqual({ ...totals, oldestAgeMs: null }, { users: 4, usersWithPending: 4, devices: 2, pending: 4, pendingBytes: 7 + 9 + 8 + 8, oldestAgeMs: null });
    // The metrics gauges agree with the walk (skip and purge were counted too).
    const m = parseProm((await s.get('/metrics')).text);
    assert.equal(sample(m, 'pobox_pending_messages'), totals.pending);
    assert.equal(sample(m, 'pobox_pending_bytes'), totals.pendingBytes);

    // purge all of bob's; remove a device; errors have codes and exit statuses.
    assert.deepEqual(await runJson(['purge', 'bob', ...http]), { user: 'bob', deleted: 1, deletedBytes: 7 });
    assert.deepEqual(await runJson(['devices', 'bob', 'remove', 'tablet', ...http]), { user: 'bob', device: 'tablet', removed: true });
    r = await runCli(['devices', 'bob', 'remove', 'tablet', ...http]);
    assert.deepEqual([r.code, /NOT_FOUND/.test(r.stderr)], [1, true]);
    r = await runCli(['inspect', 'bob', '--url', s.server.url]);
    assert.deepEqual([r.code, /BAD_REQUEST: .*admin-key/.test(r.stderr)], [2, true]);
    r = await runCli(['inspect', 'bob', '--url', s.server.url, '--admin-key', 'wrong-key-wrong-key-wrong-key']);
    assert.deepEqual([r.code, /UNAUTHORIZED/.test(r.stderr)], [1, true]);
    r = await runCli(['inspect', 'not a user', ...http]);
    assert.deepEqual([r.code, /BAD_REQUEST/.test(r.stderr)], [2, true]);

    // Stop the server; the same commands work on its data dir.
    await s.server.close();
    stopped = true;
    const dir = ['--data-dir', s.dataDir];
    const before = await runJson<MailboxStats>(['inspect', 'carol', ...dir]);
    assert.deepEqual([before.pending, before.lastSeq], [1, 1]);
    // POBOX_DATA_DIR stands for --data-dir; --data-dir beats POBOX_URL; an empty POBOX_URL is unset.
    for (const [args, env] of [
      [[], { POBOX_DATA_DIR: s.dataDir }],
      [dir, { POBOX_URL: 'http://127.0.0.1:1' }],
      [[], { POBOX_URL: '', POBOX_DATA_DIR: s.dataDir }],
    ] as const) {
      const viaEnv = await runCliProcess(['inspect', 'carol', '--json', ...args], env);
      assert.equal(viaEnv.code, 0, `${JSON.stringify(env)}: ${viaEnv.stderr}`);
      assert.equal((JSON.parse(viaEnv.stdout) as MailboxStats).lastSeq, 1);
    }
    assert.equal((await runJson<{ seq: number }>(['send', ...dir, '--to', 'carol', '--from', 'ops', 'offline note'])).seq, 2);
    assert.equal((await runJson<{ cursor: number }>(['devices', 'carol', 'add', 'old', '--start', 'oldest', ...dir])).cursor, 0);
    assert.equal((await runJson<{ cursor: number }>(['devices', 'carol', 'add', 'phone', '--start', 'head', ...dir])).cursor, 2);
    assert.deepEqual(await runJson(['purge', 'carol', '--device', 'old', ...dir]), { user: 'carol', device: 'old', cursor: 2, deleted: 2 });
    const after = await runJson<MailboxTotals>(['stats', ...dir]);
    assert.deepEqual([after.users, after.pending, after.devices], [4, 2, 3]);
    assert.deepEqual(await runJson(['devices', 'carol', 'remove', 'old', ...dir]), { user: 'carol', device: 'old', removed: true });
    r = await runCli(['inspect', 'carol', '--data-dir', `${s.dataDir}/nowhere`]);
    assert.deepEqual([r.code, /NOT_FOUND: no embedded store/.test(r.stderr)], [1, true]);
  } finally {
    if (!stopped) await s.server.close();
    await s.close();
  }
});
