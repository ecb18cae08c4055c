/**
 * A full disk (issue 13 items 5 and 6): `pobox serve` on a small tmpfs that fills up.
 * Sends that cannot be made durable are answered with the typed UNAVAILABLE, the process
 * has no unhandled rejection (it would now exit 70: crash-only), /readyz answers 503 with a
 * reason while writes fail and 200 once space is freed, without a restart (the embedded
 * engine recovers in place), the refused sends resent with their ids are accepted, and
 * after a restart every accepted message is still there.
 *
 * Needs `mount -t tmpfs` (CI runs as root); where mounting is refused the test is skipped
 * with the reason.
 */
import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { RawDevice } from '../multinode/devices.js';
import { mountTmpfs } from '../support/tmpfs.js';
import { waitFor } from '../support/wait.js';
import { newSecret, readyz, sendToBob, type ServeNode, startServeNode, userToken } from './serve-nodes.js';

const TMPFS_BYTES = 24 * 1024 * 1024;

describe('a full disk', () => {
  it('typed UNAVAILABLE, no unhandled rejection, /readyz 503 then 200, nothing accepted lost after a restart', async (t) => {
    const tmpfs = await mountTmpfs(TMPFS_BYTES, 'pobox-full-disk-');
    if ('refused' in tmpfs) {
      t.diagnostic(tmpfs.refused);
      t.skip(tmpfs.refused);
      return;
    }
    const { root, mnt } = tmpfs;
    const secret = newSecret();
    const dataDir = join(mnt, 'data');
    const nodes: ServeNode[] = [];
    try {
      const opts = { dir: root, name: 'full', secret, dataDir, config: { readiness: { writeFailures: 3 }, postOffice: { retention: { sweepIntervalMs: 0 } } } };
      const node = await startServeNode(opts);
      nodes.push(node);
      const alice = await userToken(secret, 'alice', 'laptop');
      assert.equal((await readyz(node)).status, 200);

      tmpfs.fill('ballast', 2 * 1024 * 1024);
      const accepted: string[] = [];
      const refused: string[] = [];
      const refusedCodes: string[] = [];
      const body = 'x'.repeat(60 * 1024);
      for (let i = 0; i < 400 && refusedCodes.length < 5; i++) {
        const r = await sendToBob(node, alice, `m${i}`, body);
        if (r.status === 201) accepted.push(`m${i}`);
        else {
          refused.push(`m${i}`);
          refusedCodes.push(`${r.status} ${r.code}`);
        }
      }
      assert.ok(refusedCodes.length >= 5, `the disk never filled (${accepted.length} accepted)`);
      assert.ok(accepted.length > 0, 'some sends fit before the disk filled');
      for (const c of refusedCodes) assert.equal(c, '503 UNAVAILABLE');

      const down = await readyz(node);
      assert.equal(down.status, 503);
      // Which check trips depends on the engine: failing writes, or (an engine that stops
      // on a write error, as the lmdb WAL does) every call failing.
      assert.match(down.message, /store writes are failing|store is not answering/);
      assert.match(down.message, /space|ENOSPC|MDB|full|Commit/i);

      rmSync(join(mnt, 'ballast'));
      // Back to 200 once space is freed, by itself: the same process, no restart.
      let last = down;
      await waitFor(
        async () => {
          last = await readyz(node);
          if (last.status === 200) return true;
          await new Promise((r) => setTimeout(r, 200)); // each 503 may have made a probe write
          return false;
        },
        'ready again once space was freed',
        60_000,
      ).catch((err: unknown) => assert.fail(`${(err as Error).message}; last answer: ${last.status} ${last.message}`));
      // The SDK resends what was answered UNAVAILABLE with the same id: accepted now (201),
      // or found already stored (200, a send whose answer came too late).
      for (const id of refused) {
        const r = await sendToBob(node, alice, id, body);
        assert.ok(r.status === 201 || r.status === 200, `resend of ${id} after space was freed: ${r.status} ${r.code}`);
        accepted.push(id);
      }
      const after = await sendToBob(node, alice, 'after-free', 'room again');
      assert.equal(after.status, 201);
      accepted.push('after-free');

      assert.equal(node.child.exitCode, null, `the server is still running:\n${node.output()}`);
      // No rejection or exception of ours went unhandled (those exit 70). lmdb-js's own batch
      // promise (src/store/lmdb/commit-leak.ts) is reported as a known leak, counted here.
      assert.doesNotMatch(node.output(), /"level":60|unhandled rejection;|uncaught exception/);
      const leaks = node
        .output()
        .split('\n')
        .filter((l) => l.includes('known library leak')).length;
      t.diagnostic(`${accepted.length} accepted, ${refusedCodes.length} refused UNAVAILABLE, ${leaks} lmdb-js batch promises reported as a known leak`);
      await node.stop();
      assert.notEqual(node.child.exitCode, 70, node.output());

      // Restart on the same data dir: bob's first device gets every accepted message.
      const again = await startServeNode(opts);
      nodes.push(again);
      const bob = new RawDevice();
      await bob.open(again.wsUrl, await userToken(secret, 'bob', 'phone'));
      // Ack as messages arrive (the window holds 1 MiB of unacked bodies) until caughtUp.
      const acking = setInterval(() => {
        const top = Math.max(0, ...bob.of('message').map((m) => m.seq));
        if (top > 0) bob.send({ type: 'ack', upTo: top });
      }, 100);
      try {
        await bob.waitFrame((f) => f.type === 'caughtUp', 'bob caught up', 60_000);
      } finally {
        clearInterval(acking);
      }
      const got = new Set(bob.of('message').map((m) => m.id));
      const missing = accepted.filter((id) => !got.has(id));
      assert.deepEqual(missing, [], 'accepted messages lost');
      await bob.cut();
      const up = await readyz(again);
      assert.equal(up.status, 200, `after the restart: ${up.message}`);
      assert.equal((await sendToBob(again, alice, 'after-restart', 'room again')).status, 201);
    } catch (err) {
      for (const n of nodes) t.diagnostic(`server output (exit ${n.child.exitCode ?? n.child.signalCode}):\n${n.output()}`);
      throw err;
    } finally {
      await Promise.allSettled(nodes.map((n) => n.stop()));
      await tmpfs.remove();
    }
  });
});
