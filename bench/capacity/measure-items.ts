/**
 * How many bytes DynamoDB stores per message, per dedupe entry and per user, measured
 * on the engine's real items: messages are sent through the post office to users with
 * three devices over DynamoDB Local, the table is scanned, and each item is sized by
 * DynamoDB's rules (attribute names + values, plus the 100 bytes of per-item overhead
 * AWS bills for storage), with its index copy (keys + projected `seq`) when it has one.
 */
import { ScanCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { PostOffice } from '../../src/postoffice/post-office.js';
import { itemSize } from '../../src/store/dynamodb/codec.js';
import { DEDUPE_PREFIX, MESSAGE_PREFIX, META_SK } from '../../src/store/dynamodb/keys.js';
import { openDynamoDbStore } from '../../src/store/dynamodb/index.js';
import { localClient, startDynamoDbLocal } from '../../tools/dynamodb-local.js';
import { onCleanup } from '../lib/cleanup.js';

type Item = Record<string, AttributeValue>;
const OVERHEAD = 100;

export interface ItemMeasurement {
  bodyBytes: number;
  devices: number;
  /** Mean stored bytes per item kind, index copy included. */
  message: number;
  dedupe: number;
  meta: number;
  /** Item kinds seen that are none of the above (counted, not sized). */
  other: number;
  /** Index entries (items with an index key) per message, meta items aside: each costs an index write when made and one when deleted. */
  indexEntriesPerMessage: number;
}

function indexCopy(item: Item): number {
  if (item.gpk === undefined) return 0;
  const projected: Item = {};
  for (const k of ['pk', 'sk', 'gpk', 'gsk', 'seq']) if (item[k]) projected[k] = item[k]!;
  return itemSize(projected) + OVERHEAD;
}

export async function measureItems(opts: { users: number; perUser: number; bodyBytes: number; devices: number }): Promise<ItemMeasurement> {
  const ddb = await startDynamoDbLocal({ startTimeoutMs: 180_000 });
  onCleanup('dynamodb-local', () => ddb.stop());
  const table = await ddb.newTable({ ttl: true });
  const client = localClient(ddb.endpoint);
  onCleanup('client', () => client.destroy());
  const store = await openDynamoDbStore({ engine: 'dynamodb', table, endpoint: ddb.endpoint }, { client });
  const po = new PostOffice({ store, sweeper: false });
  onCleanup('post office', () => po.close());
  const body = 'x'.repeat(opts.bodyBytes);
  for (let u = 0; u < opts.users; u++) {
    const user = `user-${String(u).padStart(9, '0')}`;
    for (let d = 0; d < opts.devices; d++) await po.registerDevice(user, `device-${d}`);
    for (let m = 0; m < opts.perUser; m++) await po.send({ to: user, from: `sender-${String(m).padStart(9, '0')}`, id: `msg-${u}-${m}-0123456789abcdef`, body });
    // Every device acks part of the stream, so cursors hold real values.
    for (let d = 0; d < opts.devices; d++) await po.ack(user, `device-${d}`, Math.max(0, opts.perUser - 1 - d));
  }
  const sizes = { message: [] as number[], dedupe: [] as number[], meta: [] as number[] };
  let other = 0;
  let indexed = 0;
  let start: Item | undefined;
  do {
    const page = await client.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start }));
    for (const item of page.Items ?? []) {
      const sk = item.sk?.S ?? '';
      const bytes = itemSize(item) + OVERHEAD + indexCopy(item);
      if (item.gpk !== undefined && sk !== META_SK) indexed++;
      if (sk === META_SK) sizes.meta.push(bytes);
      else if (sk.startsWith(MESSAGE_PREFIX)) sizes.message.push(bytes);
      else if (sk.startsWith(DEDUPE_PREFIX)) sizes.dedupe.push(bytes);
      else other++;
    }
    start = page.LastEvaluatedKey;
  } while (start);
  const mean = (xs: number[]): number => (xs.length ? Math.round(xs.reduce((a, b) => a + b, 0) / xs.length) : 0);
  return {
    bodyBytes: opts.bodyBytes,
    devices: opts.devices,
    message: mean(sizes.message),
    dedupe: mean(sizes.dedupe),
    meta: mean(sizes.meta),
    other,
    indexEntriesPerMessage: indexed / (opts.users * opts.perUser),
  };
}
