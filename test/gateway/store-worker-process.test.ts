/**
 * `pobox serve --store-worker` as a real process, run both ways the program runs: from
 * source through tsx (tests, benchmarks) and compiled, as bin/pobox.js loads it from
 * dist/ (the worker thread's module is found by URL beside host.js, with no tsx). A
 * message is sent and delivered live over WebSocket, another stays pending; SIGTERM
 * closes the engine in the worker (exit 0), and a server on the same data dir without the
 * worker delivers the pending one: what the engine in the worker acknowledged is on disk.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { mintToken } from '../../src/gateway/auth.js';
import { startServer } from '../../src/server/compose.js';
import { compilePackage, type CompiledPackage } from '../support/compiled.js';
import { RawClient } from '../support/raw-client.js';
import { spawnServeProcess } from '../support/serve-process.js';
import { tempDir, type TempDir } from '../support/temp-dir.js';
import { SECRET } from './helpers.js';

describe('pobox serve --store-worker', () => {
  const dirs: TempDir[] = [];
  let compiled: CompiledPackage | undefined;
  after(async () => {
    for (const d of dirs) await d.remove();
    await compiled?.remove();
  });

  const run = async (program: readonly string[] | undefined): Promise<void> => {
    const dir = tempDir('pobox-sw-');
    dirs.push(dir);
    const args = ['--store-worker', '--port', '0', '--data-dir', dir.path, '--no-demo', '--log-level', 'warn'];
    const serve = await spawnServeProcess('pobox serve --store-worker', args, { ...process.env, POBOX_JWT_SECRETS: SECRET }, program ? { program } : {});
    try {
      const token = (user: string) => mintToken({ secret: SECRET, user, device: 'phone' });
      const bob = await RawClient.session(serve.httpUrl, await token('bob'));
      const alice = await RawClient.connect(serve.httpUrl, await token('alice'));
      alice.send({ type: 'send', id: 'live', to: 'bob', body: 'delivered live' });
      await bob.waitFor((f) => f.type === 'message' && f.id === 'live', 'the live message');
      bob.send({ type: 'ack', upTo: bob.messages().at(-1)!.seq });
      await bob.waitFor((f) => f.type === 'acked', 'acked');
      await bob.close();
      alice.send({ type: 'send', id: 'pending', to: 'bob', body: 'for later' });
      await alice.waitFor((f) => f.type === 'accepted' && f.id === 'pending', 'accepted');
      await alice.close();
    } finally {
      serve.child.kill('SIGTERM');
    }
    const exit = await serve.exited;
    assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}:\n${serve.output()}`);

    const server = await startServer({ port: 0, dataDir: dir.path, logLevel: 'silent', demo: false, auth: { secrets: [SECRET] } });
    try {
      const bob = await RawClient.session(server.url, await mintToken({ secret: SECRET, user: 'bob', device: 'phone' }));
      assert.deepEqual(
        bob.messages().map((m) => [m.id, m.body]),
        [['pending', 'for later']],
      );
      await bob.close();
    } finally {
      await server.close();
    }
  };

  test('from source, through tsx', () => run(undefined));

  test('compiled, as bin/pobox.js runs it', async () => {
    compiled = compilePackage();
    await run([compiled.bin]);
  });
});
