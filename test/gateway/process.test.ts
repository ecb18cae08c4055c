/**
 * `pobox serve` as a real child process: graceful SIGTERM, and SIGKILL while clients
 * send followed by a restart on the same data dir (nothing accepted is lost).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { api, autoAck, SECRET } from './helpers.js';
import { tempDir } from '../support/temp-dir.js';
import { RawClient } from '../support/raw-client.js';
import { runCliProcess } from '../support/cli.js';
import { spawnServeProcess } from '../support/serve-process.js';
import { mintToken } from '../../src/gateway/auth.js';
import { startServer } from '../../src/server/compose.js';

interface Child {
  proc: ChildProcess;
  url: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
  stdout: () => string;
}

async function spawnServe(dataDir: string, env: Record<string, string> = { POBOX_JWT_SECRETS: SECRET }): Promise<Child> {
  const p = await spawnServeProcess('pobox serve', ['--port', '0', '--data-dir', dataDir, '--log-level', 'info'], { ...process.env, ...env });
  return { proc: p.child, url: p.httpUrl, exited: p.exited, stderr: p.stderr, stdout: p.stdout };
}

describe('pobox serve process', () => {
  const dirs: string[] = [];
  const children: ChildProcess[] = [];
  after(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('without a configured secret, serve creates one (0600) and tokens minted from it work; SIGTERM closes sockets with 1001 and exits 0', async () => {
    const dir = tempDir().path;
    dirs.push(dir);
    const child = await spawnServe(dir, {});
    children.push(child.proc);
    const secretPath = join(dir, 'jwt-secret');
    assert.equal(statSync(secretPath).mode & 0o777, 0o600);
    assert.match(child.stderr(), /pobox token --user/);
    const { readFileSync } = await import('node:fs');
    const secret = readFileSync(secretPath, 'utf8').trim();
    const token = await mintToken({ secret, user: 'alice', device: 'phone' });
    const c = await RawClient.connect(child.url, token);
    c.send({ type: 'send', id: 'before-term', to: 'bob', body: 'x' });
    await c.waitFor((f) => f.type === 'accepted');
    child.proc.kill('SIGTERM');
    const closed = await c.waitClose();
    assert.equal(closed.code, 1001);
    const exit = await child.exited;
    assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}; stderr: ${child.stderr()}`);
    // Structured logs: one line per connection open and close with user and device; never the token or a body.
    const lines = child
      .stdout()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.some((l) => l['msg'] === 'connection opened' && l['user'] === 'alice' && l['device'] === 'phone'));
    assert.ok(lines.some((l) => l['msg'] === 'connection closed' && l['user'] === 'alice' && l['code'] === 1001));
    assert.ok(!child.stdout().includes(token), 'a token was logged');
    assert.ok(!child.stdout().includes(secret), 'the secret was logged');
  });

  test('pobox token mints from the data dir secret that serve then uses; bad flags name the field', async () => {
    const dir = tempDir().path;
    dirs.push(dir);
    const run = async (args: string[]) => {
      const r = await runCliProcess(args);
      return { code: r.code, out: r.stdout, err: r.stderr };
    };
    const minted = await run(['token', '--user', 'alice', '--device', 'phone', '--ttl', '5m', '--data-dir', dir]);
    assert.equal(minted.code, 0, minted.err);
    const token = minted.out.trim();
    assert.equal(token.split('.').length, 3);
    const server = await startServer({ port: 0, dataDir: dir, logLevel: 'silent' });
    try {
      assert.equal(server.secretCreated, false, 'serve reuses the secret pobox token created');
      const c = await RawClient.connect(server.url, token);
      const w = c.frames.find((f) => f.type === 'welcome');
      assert.ok(w?.type === 'welcome' && w.user === 'alice' && w.device === 'phone');
      await c.close();
    } finally {
      await server.close();
    }
    const bad = await run(['token', '--user', 'alice smith', '--device', 'phone', '--data-dir', dir]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /BAD_REQUEST: user/);
    const badPort = await run(['serve', '--port', '99999', '--data-dir', dir]);
    assert.equal(badPort.code, 2);
    assert.match(badPort.err, /port/);
  });

  test('SIGKILL while clients send; after a restart every accepted message is delivered, none twice', async () => {
    const dir = tempDir().path;
    dirs.push(dir);
    const first = await spawnServe(dir);
    children.push(first.proc);
    const accepted = new Map<string, number>();
    const senders = await Promise.all(['s1', 's2', 's3'].map(async (u) => RawClient.connect(first.url, await mintToken({ secret: SECRET, user: u, device: 'phone' }))));
    // Each sender keeps a window of sends outstanding until the server dies.
    let stop = false;
    const loops = senders.map(async (c, k) => {
      let i = 0;
      let outstanding = 0;
      c.ws.on('message', (data) => {
        const f = JSON.parse(data.toString()) as { type: string; id?: string; seq?: number };
        if (f.type === 'accepted') {
          accepted.set(f.id!, f.seq!);
          outstanding--;
        }
      });
      while (!stop && !c.closed) {
        while (outstanding < 20 && !c.closed) {
          c.send({ type: 'send', id: `k${k}-${i}`, to: 'rcpt', body: `from ${k} #${i}` });
          i++;
          outstanding++;
        }
        await c.until(() => outstanding < 20 || c.closed !== undefined || stop, 'room', 30_000);
      }
    });
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (accepted.size >= 300) {
          clearInterval(check);
          resolve();
        }
      }, 5);
    });
    first.proc.kill('SIGKILL');
    const exit = await first.exited;
    assert.equal(exit.signal, 'SIGKILL');
    stop = true;
    await Promise.all(senders.map((c) => c.waitClose()));
    await Promise.all(loops);
    assert.ok(accepted.size >= 300);

    const second = await spawnServe(dir);
    children.push(second.proc);
    const rcpt = await RawClient.connect(second.url, await mintToken({ secret: SECRET, user: 'rcpt', device: 'phone' }));
    autoAck(rcpt, 100);
    await rcpt.waitFor((f) => f.type === 'caughtUp', 'caughtUp', { ms: 60_000 });
    const got = rcpt.messages();
    const ids = got.map((m) => m.id);
    assert.equal(new Set(ids).size, ids.length, 'a message was delivered twice');
    const bySeq = new Map(got.map((m) => [m.id, m.seq]));
    for (const [id, seq] of accepted) assert.equal(bySeq.get(id), seq, `accepted ${id} (seq ${seq}) was lost`);
    await rcpt.close();
    // A health check on the restarted node, then a clean stop.
    assert.equal((await api({ url: second.url }, 'GET', '/readyz')).status, 200);
    second.proc.kill('SIGTERM');
    assert.equal((await second.exited).code, 0);
  });
});
