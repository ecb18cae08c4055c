/**
 * The README quick start, as a new user runs it: `pobox serve`, `pobox token` for two
 * users, then examples/client.ts against the running server.
 */
import assert from 'node:assert/strict';
import { afterEach, it } from 'node:test';
import path from 'node:path';
import { Resources, tempDir } from './gateway-helpers.js';
import { runCliProcess } from '../support/cli.js';
import { REPO, runNode, spawnServe } from './serve-child.js';

const res = new Resources();
afterEach(() => res.closeAll());

it('examples/client.ts sends alice -> bob through a started server and exits 0', async () => {
  const dataDir = tempDir(res);
  const server = await spawnServe(['--port', '0', '--data-dir', dataDir]);
  res.add(async () => {
    if (server.child.exitCode === null) server.child.kill('SIGKILL');
    await server.exited;
  });
  // No secret configured: serve created one in the data dir and says how to mint tokens.
  assert.match(server.stderr(), /pobox token --user alice --device phone/);
  const token = async (user: string, device: string): Promise<string> => {
    const r = await runCliProcess(['token', '--user', user, '--device', device, '--data-dir', dataDir]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  const aliceToken = await token('alice', 'laptop');
  const bobToken = await token('bob', 'phone');

  const out = await runNode(['--import', 'tsx', path.join(REPO, 'examples/client.ts')], {
    POBOX_URL: server.wsUrl,
    ALICE_TOKEN: aliceToken,
    BOB_TOKEN: bobToken,
  });
  assert.match(out, /^bob received "hello from alice" from alice \(seq \d+\)\n$/);

  server.child.kill('SIGTERM');
  assert.deepEqual(await server.exited, { code: 0, signal: null });
});
