/**
 * The lookup benchmark's shared-log baseline must be correct, or its numbers mean
 * nothing: a scan finds exactly the user's records, including records that straddle
 * read-buffer boundaries, and survives reopening the files.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { partitionOf, SharedLog, type LogRecord } from '../../bench/lookup/shared-log.js';

function records(users: number, perUser: number): LogRecord[] {
  const out: LogRecord[] = [];
  for (let k = 0; k < perUser; k++) {
    for (let u = 0; u < users; u++) {
      // Bodies of varying length (and some non-ASCII) so records straddle the tiny read buffer at every offset.
      out.push({ user: `user-${u}`, id: `m-${u}-${k}`, sentAt: 1_700_000_000_000 + k * users + u, body: `héllo ${'x'.repeat((u * 7 + k * 13) % 97)}` });
    }
  }
  return out;
}

test("a scan returns exactly the user's records, in append order, across read-buffer boundaries", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pobox-shared-log-test-'));
  const log = new SharedLog(dir, 3, { readChunk: 256 });
  try {
    const all = records(40, 6);
    log.append(all.slice(0, 100));
    log.append(all.slice(100));
    for (const u of [0, 1, 17, 39]) {
      const user = `user-${u}`;
      const got = await log.fetch(user);
      const want = all.filter((r) => r.user === user);
      assert.deepEqual(got.records, want);
      const p = partitionOf(user, 3);
      assert.equal(got.bytesScanned, log.partitionBytes()[p]);
      assert.equal(got.recordsScanned, all.filter((r) => partitionOf(r.user, 3) === p).length);
    }
    // A user with no records (and a name that prefixes others) matches nothing.
    assert.deepEqual((await log.fetch('user-1x')).records, []);
    assert.deepEqual((await log.fetch('user')).records, []);
  } finally {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('partitions spread users and stay stable', () => {
  const counts = [0, 0, 0, 0, 0, 0, 0, 0];
  for (let u = 0; u < 8000; u++) counts[partitionOf(`user-${u}`, 8)]!++;
  for (const c of counts) assert.ok(c > 800 && c < 1200, `uneven partitions: ${counts.join(',')}`);
  assert.equal(partitionOf('user-42', 8), partitionOf('user-42', 8));
});
