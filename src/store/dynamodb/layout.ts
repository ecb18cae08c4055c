/**
 * The table's layout marker and the upgrade from layout 1.
 *
 * Layout 1 kept each user's meta item at sk "#meta" and wrote every send as a
 * transaction; acks deleted messages, so its mailboxes have gaps that were deletions.
 * Layout 2 (keys.ts) keeps the meta item at "m#~", right after the messages, and reads
 * any gap as a seq whose writer may still be writing. A layout 2 engine must therefore
 * never open a layout 1 table: the marker item says which layout a table holds, and a
 * table with mailboxes but no marker is layout 1.
 *
 * `pobox dynamodb migrate` upgrades a table in place, with every node stopped: per
 * mailbox it writes the meta item at its new key (counters, cursors, floor, epoch kept),
 * closes every gap above the floor with a tombstone (they were deletions: nothing is
 * given back), deletes the old meta item, and finally writes the marker. Messages and
 * dedupe entries are read as they are. It can be run again after an interruption.
 */
import { PoboxError } from '../../core/errors.js';
import type { UserId } from '../../core/ids.js';
import { decodeMeta, encodeMeta, encodeTombstone, seqRecord, ttlSeconds, type Item } from './codec.js';
import { LAYOUT_PK, LAYOUT_SK, LAYOUT_VERSION, LAYOUT1_META_SK, messageSk, USERS_GPK } from './keys.js';
import type { TableClient } from './queries.js';

export function tableLayoutMismatch(table: string, found: number): PoboxError {
  return new PoboxError(
    'UNAVAILABLE',
    `table ${table} holds layout ${found} of the DynamoDB engine; this pobox reads layout ${LAYOUT_VERSION}. Stop every node, run \`pobox dynamodb migrate --table ${table}\`, then start the new version`,
    { field: 'table' },
  );
}

export function layoutMarker(): Item {
  return { pk: { S: LAYOUT_PK }, sk: { S: LAYOUT_SK }, layout: { N: String(LAYOUT_VERSION) } };
}

/** The table's layout: its marker, else 1 if it has mailboxes, else undefined (empty). */
export async function tableLayout(t: TableClient): Promise<number | undefined> {
  const marker = await t.getItem(LAYOUT_PK, LAYOUT_SK);
  if (marker) return Number(marker.layout?.N ?? 0);
  const anyUser = await t.queryIndex(USERS_GPK, undefined, undefined, 1);
  return anyUser.length > 0 ? 1 : undefined;
}

/** Open check: layout 2, or an empty table (then marked). */
export async function ensureLayout(t: TableClient): Promise<void> {
  const layout = await tableLayout(t);
  if (layout === LAYOUT_VERSION) return;
  if (layout !== undefined) throw tableLayoutMismatch(t.table, layout);
  await t.put(layoutMarker());
}

export interface MigrateReport {
  mailboxes: number;
  gapsClosed: number;
  alreadyDone: boolean;
}

/** Upgrade a layout 1 table in place (every node stopped). */
export async function migrateTable(t: TableClient, graceSeconds: number, progress?: (user: UserId) => void): Promise<MigrateReport> {
  if ((await tableLayout(t)) === LAYOUT_VERSION) return { mailboxes: 0, gapsClosed: 0, alreadyDone: true };
  const report: MigrateReport = { mailboxes: 0, gapsClosed: 0, alreadyDone: false };
  let after: string | undefined;
  for (;;) {
    const page = await t.queryIndex(USERS_GPK, undefined, after, 100);
    if (page.length === 0) break;
    for (const entry of page) {
      const user = entry.pk!.S!;
      after = entry.gsk!.S!;
      if (entry.sk!.S! !== LAYOUT1_META_SK) continue;
      const old = await t.getItem(user, LAYOUT1_META_SK);
      if (!old) continue;
      const meta = decodeMeta(old);
      // Gaps above the floor were deletions in layout 1: tombstones, so readers never wait on them.
      const ttl = ttlSeconds(Date.now() + 86_400_000, graceSeconds);
      let expected = meta.floor + 1;
      const gaps: number[] = [];
      if (meta.lastSeq > meta.floor) {
        await t.queryRange(user, messageSk(meta.floor + 1), messageSk(meta.lastSeq), 1000, (items) => {
          for (const it of items) {
            const seq = seqRecord(it).seq;
            for (let s = expected; s < seq; s++) gaps.push(s);
            expected = seq + 1;
          }
          return true;
        });
      }
      for (let s = expected; s <= meta.lastSeq; s++) gaps.push(s);
      for (const s of gaps) if (await t.putIf(encodeTombstone(user, s, ttl, 0))) report.gapsClosed++;
      await t.putIf(encodeMeta(user, { ...meta, totalBytes: 0, reservedAt: 0 }));
      await t.deleteMany(user, [LAYOUT1_META_SK]);
      report.mailboxes++;
      progress?.(user);
    }
  }
  await t.put(layoutMarker());
  return report;
}
