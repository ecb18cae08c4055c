/**
 * pobox on DynamoDB Local for the lookup benchmark: starts a private DynamoDB Local
 * (on-disk, in a temp dir, random loopback port), creates a table, and opens the
 * DynamoDB engine on it. Throws with a reason when the engine or Java is missing, and
 * the benchmark records the reason instead of the series.
 */
import type { Series } from './series.js';

export interface DynamoSeriesHandle {
  series: Series;
  version: string;
  close(): Promise<void>;
}

export async function openDynamoSeries(_quick: boolean): Promise<DynamoSeriesHandle> {
  const { openDynamoDbStore } = await import('../../src/store/dynamodb/index.js');
  await openDynamoDbStore({ engine: 'dynamodb', table: 'probe', region: 'us-east-1' });
  throw new Error('not wired yet');
}
