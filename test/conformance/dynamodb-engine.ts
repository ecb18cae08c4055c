/**
 * The conformance suite on the DynamoDB engine, against Amazon's DynamoDB Local started
 * for the calling test file on a random loopback port: a fresh table per behaviour. The
 * suite runs in two files (dynamodb.test.ts, dynamodb-features.test.ts), one half each,
 * so each file's DynamoDB Local work stays within the per-file timeout.
 */
import { after, before } from 'node:test';
import { openDynamoDbStore } from '../../src/store/dynamodb/index.js';
import { startDynamoDbLocal, type DynamoDbLocal } from '../../tools/dynamodb-local.js';
import { defineConformance, type ConformancePart } from './suite.js';

export function defineDynamoDbConformance(part: ConformancePart): void {
  let ddb: DynamoDbLocal | undefined;
  before(async () => {
    ddb = await startDynamoDbLocal();
  });
  after(async () => {
    await ddb?.stop();
  });

  defineConformance(
    'dynamodb',
    async () => {
      if (!ddb) throw new Error('DynamoDB Local did not start');
      const local = ddb;
      // Native TTL stays off here: the suite's fake clock runs in the past, so DynamoDB Local
      // could delete items under it. Reads and the sweeper never rely on native TTL anyway.
      const table = await local.newTable({ ttl: false });
      const open = () => openDynamoDbStore({ engine: 'dynamodb', table, endpoint: local.endpoint, sweepShards: 4 });
      return {
        store: await open(),
        reopen: open,
        cleanup: () => local.deleteTable(table),
      };
    },
    [part],
  );
}
