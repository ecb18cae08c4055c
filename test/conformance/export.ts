/**
 * Conformance: export and import (restore) of one mailbox. An export imported into an
 * empty mailbox of the same engine (as another user) reads back exactly as the original
 * did, device by device, and behaves like it afterwards: later sends continue after its
 * last seq, resends of imported ids are duplicates, acks delete, senders' shares count
 * the imported messages. A mailbox that is not empty, or a bad or truncated file, is
 * refused with a typed error and nothing is written.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StoredMessage } from '../../src/core/types.js';
import { exportLines, importLines, readImport } from '../../src/postoffice/export.js';
import type { PostOffice } from '../../src/postoffice/post-office.js';
import { type EngineFactory, readAll, rejectsWith, withEnv } from './helpers.js';

const T = { timeout: 300_000 };

async function exported(po: PostOffice, user: string): Promise<string[]> {
  const lines: string[] = [];
  for await (const line of exportLines(po, user, { pageSize: 3 })) lines.push(line);
  return lines;
}

async function* each(lines: readonly string[]): AsyncGenerator<string> {
  for (const l of lines) yield l.replace(/\n$/, '');
}

/** What a device is shown, without the recipient (the import is another user). */
function view(msgs: readonly StoredMessage[]): unknown[] {
  return msgs.map(({ to: _to, body, ...m }) => ({ ...m, body: typeof body === 'string' ? body : Buffer.from(body).toString('hex') }));
}

/** A mailbox with every kind of content: text and bytes, a targeted message, a receipt request, gaps left by acks, an expired message, two devices at different cursors. */
async function fillBob(po: PostOffice, advance: (ms: number) => void): Promise<void> {
  await po.registerDevice('bob', 'phone');
  await po.send({ to: 'bob', from: 'alice', id: 'a1', body: 'one' });
  await po.send({ to: 'bob', from: 'alice', id: 'a2', body: new Uint8Array([0, 1, 2, 255]) });
  await po.send({ to: 'bob', from: 'carol', id: 'short', body: 'expires soon', ttlSeconds: 5 });
  await po.registerDevice('bob', 'tablet'); // starts at the head (3)
  await po.send({ to: 'bob', from: 'carol', id: 'c1', body: 'for the tablet only', toDevice: 'tablet' });
  await po.send({ to: 'bob', from: 'alice', id: 'a3', body: 'three', receipt: true });
  await po.send({ to: 'bob', from: 'carol', id: 'c2', body: new Uint8Array(0) });
  await po.send({ to: 'bob', from: 'alice', id: 'a4', body: 'four 😀' });
  // The tablet acks its targeted message and a3: only a3 stays (the phone has not read it).
  await po.ack('bob', 'tablet', 5);
  // The phone acks 1: a1 goes (both devices past it), a gap at the front.
  await po.ack('bob', 'phone', 1);
  advance(10_000); // `short` (seq 3) has expired, unswept
}

export function defineExportBehaviours(factory: EngineFactory): void {
  describe('export and import', () => {
    it('an export imported into an empty mailbox reads back the same for every device and goes on from there', T, async () => {
      await withEnv(factory, {}, async ({ po, clock, reopen }) => {
        await fillBob(po, (ms) => clock.advance(ms));
        const lines = await exported(po, 'bob');
        const header = JSON.parse(lines[0]!) as { type: string; version: number; user: string; epoch: string; lastSeq: number };
        assert.deepEqual([header.type, header.version, header.user, header.lastSeq], ['pobox-export', 1, 'bob', 7]);
        assert.deepEqual(JSON.parse(lines.at(-1)!), { type: 'end', devices: 2, messages: 5, bytes: 4 + 12 + 5 + 0 + 9 });
        const messageLines = lines.filter((l) => l.startsWith('{"type":"message"')).map((l) => JSON.parse(l) as { seq: number; binary?: boolean; body: string });
        assert.deepEqual(
          messageLines.map((m) => m.seq),
          [2, 3, 5, 6, 7],
          'what some device has not acked: not a1 or c1; the expired one, not swept yet, too',
        );
        assert.deepEqual([messageLines[0]!.binary, messageLines[0]!.body], [true, 'AAEC/w==']);

        const r = await importLines(po, each(lines), { user: 'dave' });
        assert.deepEqual({ ...r }, { user: 'dave', from: 'bob', epoch: header.epoch, lastSeq: 7, devices: 2, messages: 5, bytes: 30 });
        // The sweeper removes the expired message from both, leaving the phone (below it) the same gap notice.
        assert.equal(await po.sweepNow(), 2);
        const notice = { from: 3, to: 3, count: 1, reasons: ['expired'] };

        const check = async (p: PostOffice, label: string, user = 'dave'): Promise<void> => {
          for (const device of ['phone', 'tablet']) {
            assert.deepEqual(view(await readAll(p, user, device, 0, 2)), view(await readAll(p, 'bob', device, 0, 2)), `${label}: ${device} reads the same`);
            assert.deepEqual((await p.read(user, device, 0, 1)).gap, device === 'phone' ? notice : undefined, `${label}: ${device}'s gap notice`);
          }
          const [a, b] = [await p.stats('bob'), await p.stats(user)];
          assert.deepEqual({ ...b, user: 'bob', oldestAgeMs: null }, { ...a, oldestAgeMs: null }, `${label}: same stats`);
        };
        await check(po, 'after the import');
        assert.deepEqual(
          (await readAll(po, 'dave', 'phone')).map((m) => [m.seq, m.id]),
          [
            [2, 'a2'],
            [5, 'a3'],
            [6, 'c2'],
            [7, 'a4'],
          ],
        );
        po = await reopen();
        await check(po, 'after a reopen');
        // A stored gap notice travels with its device.
        const withNotice = await exported(po, 'bob');
        assert.deepEqual((JSON.parse(withNotice[1]!) as { device: string; gap?: unknown }).gap, notice);
        await importLines(po, each(withNotice), { user: 'erin' });
        await check(po, 'a second move', 'erin');

        // It goes on: the next send takes seq 8, a resend of an imported id is a duplicate with its seq.
        assert.deepEqual(await po.send({ to: 'dave', from: 'alice', id: 'new', body: 'after the move' }), {
          seq: 8,
          duplicate: false,
          durable: true,
          epoch: header.epoch,
        });
        const again = await po.send({ to: 'dave', from: 'alice', id: 'a4', body: 'four 😀' });
        assert.deepEqual([again.seq, again.duplicate], [7, true]);
        // Acks delete as in any mailbox: both devices at 8 leave nothing pending.
        await po.ack('dave', 'phone', 8);
        await po.ack('dave', 'tablet', 8);
        const s = await po.stats('dave');
        assert.deepEqual([s.pending, s.pendingBytes, s.lastSeq], [0, 0, 8]);
      });
    });

    it('imported messages count toward their senders shares (fair quotas) and expire like any other', T, async () => {
      await withEnv(factory, { limits: { maxMailboxMessages: 8, senderShare: 0.25 } }, async ({ po, clock }) => {
        await po.registerDevice('bob', 'phone');
        await po.send({ to: 'bob', from: 'alice', id: 'a1', body: 'x', ttlSeconds: 60 });
        await po.send({ to: 'bob', from: 'alice', id: 'a2', body: 'y', ttlSeconds: 3600 });
        await po.send({ to: 'bob', from: 'carol', id: 'c1', body: 'z', ttlSeconds: 60 });
        await importLines(po, each(await exported(po, 'bob')), { user: 'dave' });
        await rejectsWith(po.send({ to: 'dave', from: 'alice', id: 'a3', body: 'over the share' }), 'SENDER_QUOTA');
        assert.equal((await po.send({ to: 'dave', from: 'carol', id: 'c2', body: 'room' })).seq, 4);
        clock.advance(120_000);
        assert.equal(await po.sweepNow(), 2 * 2, 'a1 and c1 expired in both mailboxes');
        const s = await po.stats('dave');
        assert.deepEqual([s.pending, s.lastSeq], [2, 4]);
        assert.equal((await po.send({ to: 'dave', from: 'alice', id: 'a3', body: 'share back' })).seq, 5);
      });
    });

    it('refuses an import into a mailbox that is not empty with CONFLICT, changing nothing', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await po.registerDevice('bob', 'phone');
        await po.send({ to: 'bob', from: 'alice', id: 'a1', body: 'one' });
        const lines = await exported(po, 'bob');
        // A device, or a message without any device: either way not empty.
        await po.registerDevice('dave', 'laptop');
        await po.send({ to: 'erin', from: 'alice', id: 'e1', body: 'kept' });
        for (const user of ['dave', 'erin', 'bob']) {
          const before = await po.stats(user);
          await rejectsWith(importLines(po, each(lines), { user }), 'CONFLICT');
          await rejectsWith(po.restore({ user, epoch: 'e0', lastSeq: 1, devices: [], messages: [] }), 'CONFLICT');
          assert.deepEqual(await po.stats(user), before, `${user} unchanged`);
        }
      });
    });

    it('refuses a truncated or inconsistent file with an error naming the line, writing nothing', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await po.registerDevice('bob', 'phone');
        for (let i = 1; i <= 5; i++) await po.send({ to: 'bob', from: 'alice', id: `a${i}`, body: `body ${i}` });
        const lines = await exported(po, 'bob');
        assert.equal(lines.length, 1 + 1 + 5 + 1);
        const bad: Array<[string, string[], RegExp]> = [
          ['truncated (no end line)', lines.slice(0, -1), /truncated/],
          ['cut in the middle of a message', [...lines.slice(0, 4), lines[4]!.slice(0, 20)], /line 5: not valid JSON/],
          ['end line counts differ', [...lines.slice(0, 3), ...lines.slice(4)], /line 7: the end line counts/],
          ['seqs out of order', [lines[0]!, lines[1]!, lines[3]!, lines[2]!, ...lines.slice(4)], /line 4: .*ascending/],
          ['an unknown line type', [...lines.slice(0, 2), '{"type":"gossip"}', ...lines.slice(2)], /line 3: .*type/],
          ['no header', lines.slice(1), /line 1: .*header/],
          ['an unknown version', [lines[0]!.replace('"version":1', '"version":2'), ...lines.slice(1)], /line 1: version/],
          ['a field of the wrong type', [...lines.slice(0, 2), lines[2]!.replace(/"seq":1/, '"seq":"1"'), ...lines.slice(3)], /line 3: seq/],
          ['lines after the end', [...lines, lines[2]!], /line 9: nothing may follow/],
          ['a cursor past the last seq', [lines[0]!, lines[1]!.replace('"cursor":0', '"cursor":9'), ...lines.slice(2)], /line 2: .*beyond the last seq/],
          [
            'a gap notice beyond the last seq',
            [lines[0]!, lines[1]!.replace('"registeredAt"', '"gap":{"from":1,"to":9,"count":1,"reasons":["expired"]},"registeredAt"'), ...lines.slice(2)],
            /line 2: .*gap notice up to 9/,
          ],
          [
            'a gap notice with a repeated reason',
            [lines[0]!, lines[1]!.replace('"registeredAt"', '"gap":{"from":1,"to":2,"count":1,"reasons":["expired","expired"]},"registeredAt"'), ...lines.slice(2)],
            /line 2: gap\.reasons: reasons must not repeat/,
          ],
          ['a message for a device not in the file', [lines[0]!, lines[1]!, lines[2]!.replace('"body"', '"toDevice":"ghost","body"'), ...lines.slice(3)], /ghost/],
        ];
        for (const [what, file, message] of bad) {
          const err = await rejectsWith(importLines(po, each(file), { user: 'dave' }), 'BAD_REQUEST');
          assert.match(err.message, message, what);
          const s = await po.stats('dave');
          assert.deepEqual([s.epoch, s.lastSeq, s.devices.length], ['', 0, 0], `${what}: nothing written`);
        }
        // The same file, whole, still imports: nothing of the failed attempts was left behind.
        const r = await importLines(po, each(lines), { user: 'dave' });
        assert.deepEqual([r.messages, r.devices, r.lastSeq], [5, 1, 5]);
        assert.deepEqual(
          (await readAll(po, 'dave', 'phone')).map((m) => m.body),
          ['body 1', 'body 2', 'body 3', 'body 4', 'body 5'],
        );
      });
    });

    it('refuses an import over the target limits (quota, body size, devices) with their own codes', T, async () => {
      await withEnv(factory, {}, async ({ po }) => {
        await po.registerDevice('bob', 'phone');
        await po.registerDevice('bob', 'tablet');
        for (let i = 1; i <= 3; i++) await po.send({ to: 'bob', from: 'alice', id: `a${i}`, body: 'x'.repeat(100) });
        const lines = await exported(po, 'bob');
        const small = { ...po.importLimits() };
        await rejectsWith(readImport(each(lines), { ...small, maxMailboxMessages: 2 }), 'MAILBOX_FULL');
        await rejectsWith(readImport(each(lines), { ...small, maxMailboxBytes: 250 }), 'MAILBOX_FULL');
        await rejectsWith(readImport(each(lines), { ...small, maxBodyBytes: 99 }), 'PAYLOAD_TOO_LARGE', 'body');
        await rejectsWith(readImport(each(lines), { ...small, maxDevices: 1 }), 'FORBIDDEN');
        const ok = await readImport(each(lines), small);
        assert.deepEqual([ok.snapshot.messages.length, ok.snapshot.devices.length], [3, 2]);
      });
    });
  });
}
