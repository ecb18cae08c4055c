/**
 * The conformance suite on the DynamoDB engine, against Amazon's DynamoDB Local started
 * for the calling test file on a random loopback port (useDynamoDbLocal): a fresh table per
 * behaviour. The suite runs in two files (dynamodb.test.ts, dynamodb-features.test.ts), one
 * half each, so each file's DynamoDB Local work stays within the per-file timeout.
 */
import { openDynamoDbStore } from '../../src/store/dynamodb/index.js';
import { useDynamoDbLocal } from '../store/dynamodb/local-stores.js';
import { defineConformance, type ConformancePart } from './suite.js';

export function defineDynamoDbConformance(part: ConformancePart): void {
  const local = useDynamoDbLocal();
  defineConformance(
    'dynamodb',
    async () => {
      const { ddb } = local;
      // Native TTL stays off here: the suite's fake clock runs in the past, so DynamoDB Local
      // could delete items under it. Reads and the sweeper never rely on native TTL anyway.
      // The suite closes and reopens stores itself, so they are opened here, not through local.open.
      const table = await ddb.newTable({ ttl: false });
      const open = () => openDynamoDbStore({ engine: 'dynamodb', table, endpoint: ddb.endpoint, sweepShards: 4 });
      return {
        store: await open(),
        reopen: open,
        cleanup: () => ddb.deleteTable(table),
      };
    },
    [part],
  );
}
