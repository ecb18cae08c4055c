/**
 * The conformance suite on the DynamoDB engine, against Amazon's DynamoDB Local started
 * for this file on a random loopback port: a fresh table per behaviour.
 */
import { after, before } from 'node:test';
import { openDynamoDbStore } from '../../src/store/dynamodb/index.js';
import { startDynamoDbLocal, type DynamoDbLocal } from '../helpers/dynamodb-local.js';
import { defineConformance } from './suite.js';

let ddb: DynamoDbLocal | undefined;
before(async () => {
  ddb = await startDynamoDbLocal();
});
after(async () => {
  await ddb?.stop();
});

defineConformance('dynamodb', async () => {
  if (!ddb) throw new Error('DynamoDB Local did not start');
  const local = ddb;
  const table = await local.newTable();
  const open = () => openDynamoDbStore({ engine: 'dynamodb', table, endpoint: local.endpoint, sweepShards: 4 });
  return {
    store: await open(),
    reopen: open,
    cleanup: () => local.deleteTable(table),
  };
});
