/**
 * The store in a worker thread (src/store/worker/host.ts) against the same engine in
 * process: the same answers, errors with the same codes, messages and fields, the same
 * counters; close and an unexpected death of the thread. The whole contract runs through
 * it in test/conformance/lmdb-worker.test.ts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { PoboxError } from '../../../src/core/errors.js';
import { openLmdbStore } from '../../../src/store/lmdb/index.js';
import { openStore } from '../../../src/store/open.js';
import { isStoreWorkerDeath, openWorkerStore, WorkerStore } from '../../../src/store/worker/host.js';
import { tempDir } from '../../support/temp-dir.js';
import { item, LIMITS, NOW, script } from './script.js';

describe('store in a worker thread', () => {
  it('answers, errors (code, message, field) and counters are those of the engine in process', async () => {
    const a = tempDir();
    const b = tempDir();
    const inProcess = await openLmdbStore({ path: a.path });
    const inWorker = await openStore({ engine: 'lmdb', path: b.path, worker: true });
    try {
      assert.ok(inWorker instanceof WorkerStore);
      assert.equal(inWorker.engine, 'lmdb');
      assert.deepEqual(inWorker.capabilities, inProcess.capabilities);
      assert.equal(inWorker.capacity, undefined, 'lmdb meters nothing');
      const expected = await script(inProcess);
      const got = await script(inWorker);
      assert.deepEqual(got, expected);
      // The script did meet each kind of error it means to compare.
      const codes = JSON.stringify(got);
      for (const code of ['FORBIDDEN', 'MAILBOX_FULL', 'NOT_FOUND', 'BAD_REQUEST', 'CONFLICT', 'TypeError']) assert.ok(codes.includes(code), code);
    } finally {
      await inProcess.close();
      await inWorker.close();
      await a.remove();
      await b.remove();
    }
  });

  it('an engine that cannot open answers its own typed error, and the thread ends', async () => {
    const dir = tempDir();
    try {
      const file = join(dir.path, 'a-file');
      await writeFile(file, 'x');
      await assert.rejects(
        openWorkerStore({ lmdb: { path: join(file, 'sub') } }),
        (err: unknown) => err instanceof PoboxError && err.code === 'UNAVAILABLE' && err.field === 'path' && err.message.includes(file),
      );
    } finally {
      await dir.remove();
    }
  });

  it('close() closes the engine in the worker (applied: a reopen replays nothing), then later calls are refused', async () => {
    const dir = tempDir();
    try {
      const store = await openWorkerStore({ lmdb: { path: dir.path } });
      await store.registerDevice('bob', 'phone', 'oldest', NOW, 5);
      const sent = await store.append([item('m1'), item('m2')], LIMITS);
      assert.deepEqual(
        sent.map((o) => o.ok),
        [true, true],
      );
      await store.close();
      await store.close(); // closing twice is harmless
      await assert.rejects(store.listDevices('bob'), (err: unknown) => err instanceof PoboxError && err.code === 'UNAVAILABLE' && /closed/.test(err.message));
      // The engine closed inside the worker: everything applied, lock and environment released.
      const again = await openLmdbStore({ path: dir.path });
      try {
        assert.equal(again.recovery.replayed, 0);
        const page = await again.read({ user: 'bob', device: 'phone', afterSeq: 0, limit: 10, now: NOW });
        assert.deepEqual(
          page.messages.map((m) => m.id),
          ['m1', 'm2'],
        );
      } finally {
        await again.close();
      }
    } finally {
      await dir.remove();
    }
  });

  it('a worker that dies answers UNAVAILABLE to every pending and later call, is reported once, and loses nothing acknowledged', async () => {
    const dir = tempDir();
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./die-child.ts', import.meta.url)), dir.path, '--after', '300'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const lines: string[] = [];
      createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      assert.equal(code, 0, stderr);
      assert.equal(lines.at(-1), 'X');
      const acked = lines.filter((l) => l.startsWith('A ')).map((l) => l.split(' '));
      const refused = lines.filter((l) => l.startsWith('E '));
      assert.ok(acked.length >= 300, `${acked.length} acknowledged`);
      assert.equal(refused.length, 16, 'every sender had a send in flight or next, refused');
      assert.deepEqual(new Set(refused), new Set(['E UNAVAILABLE']));
      assert.ok(lines.includes('L UNAVAILABLE'), 'a send after the death is refused UNAVAILABLE');
      assert.deepEqual(
        lines.filter((l) => l.startsWith('D ')),
        ['D true'],
        'the death is reported once, marked',
      );

      // A fresh process (this one) replays the engine from disk: every acknowledged send is there, once, at its seq.
      const store = await openLmdbStore({ path: dir.path });
      try {
        const stored = new Map<string, number>();
        for (let after = 0; ;) {
          const page = await store.read({ user: 'bob', device: 'd', afterSeq: after, limit: 1000, now: Date.now() });
          for (const m of page.messages) {
            assert.equal(stored.has(m.id), false, `${m.id} stored twice`);
            stored.set(m.id, m.seq);
            assert.equal(m.body, `body of ${m.id}`);
          }
          if (!page.more) break;
          after = page.nextAfter;
        }
        for (const [, id, seq] of acked) assert.equal(stored.get(id!), Number(seq), `${id} acknowledged at ${seq}`);
      } finally {
        await store.close();
      }
    } finally {
      await dir.remove();
    }
  });

  it('isStoreWorkerDeath tells the death apart from a call that failed', () => {
    assert.equal(isStoreWorkerDeath(new PoboxError('UNAVAILABLE', 'the store worker stopped')), false);
    assert.equal(isStoreWorkerDeath('text'), false);
  });
});
