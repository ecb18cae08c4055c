/**
 * The DynamoDB engine in a worker thread (`worker: true`), against DynamoDB Local: the same
 * answers, errors and counters as the engine in process on a table of its own, and its
 * capacity (what DynamoDB reported) read synchronously from what the worker sends along.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openDynamoDbStore } from '../../../src/store/dynamodb/index.js';
import { openStore } from '../../../src/store/open.js';
import { WorkerStore } from '../../../src/store/worker/host.js';
import { useDynamoDbLocal } from '../dynamodb/local-stores.js';
import { script } from './script.js';

const local = useDynamoDbLocal();

describe('DynamoDB engine in a worker thread', () => {
  it('answers, errors and counters are those of the engine in process; capacity comes along', async () => {
    const { ddb } = local;
    const [t1, t2] = [await ddb.newTable({ ttl: false }), await ddb.newTable({ ttl: false })];
    const inProcess = await openDynamoDbStore({ engine: 'dynamodb', table: t1, endpoint: ddb.endpoint, sweepShards: 4 });
    const inWorker = await openStore({ engine: 'dynamodb', table: t2, endpoint: ddb.endpoint, sweepShards: 4, worker: true });
    try {
      assert.ok(inWorker instanceof WorkerStore);
      assert.equal(inWorker.engine, 'dynamodb');
      assert.deepEqual(inWorker.capabilities, inProcess.capabilities);
      const expected = await script(inProcess);
      const got = await script(inWorker);
      assert.deepEqual(got, expected);
      const codes = JSON.stringify(got);
      for (const code of ['FORBIDDEN', 'MAILBOX_FULL', 'NOT_FOUND', 'BAD_REQUEST', 'CONFLICT']) assert.ok(codes.includes(code), code);
      // Capacity as the engine counted it, synchronously, exact after the last call resolved.
      assert.ok(inWorker.capacity, 'a metered engine has capacity()');
      const expectedCapacity = inProcess.capacity();
      assert.ok(expectedCapacity.writeUnits > 0 && expectedCapacity.requests > 0);
      // Every field the engine counts, its own extras included.
      assert.deepEqual(inWorker.capacity(), expectedCapacity);
    } finally {
      await inProcess.close();
      await inWorker.close();
      await ddb.deleteTable(t1);
      await ddb.deleteTable(t2);
    }
  });
});
