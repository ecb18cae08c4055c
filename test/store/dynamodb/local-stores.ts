/**
 * DynamoDB Local for one DynamoDB test file: started before its tests; after them, every
 * store opened through `open` is closed and Local is stopped (tools/dynamodb-local.ts).
 * Call `useDynamoDbLocal()` at the top of the file.
 */
import { after, before } from 'node:test';
import { openDynamoDbStore, type DynamoDbConfigInput, type DynamoDbStore } from '../../../src/store/dynamodb/index.js';
import { startDynamoDbLocal, type DynamoDbLocal } from '../../../tools/dynamodb-local.js';

export interface LocalStores {
  /** DynamoDB Local, once the file's `before` has run. */
  readonly ddb: DynamoDbLocal;
  /** The engine on `table` of DynamoDB Local (config fields beyond table and endpoint in `config`); closed after the file's tests. */
  open(table: string, extra?: Parameters<typeof openDynamoDbStore>[1], config?: Partial<DynamoDbConfigInput>): Promise<DynamoDbStore>;
}

export function useDynamoDbLocal(): LocalStores {
  let local: DynamoDbLocal | undefined;
  const stores: DynamoDbStore[] = [];
  before(async () => {
    local = await startDynamoDbLocal();
  });
  after(async () => {
    for (const s of stores) await s.close();
    await local?.stop();
  });
  const ddb = (): DynamoDbLocal => {
    if (!local) throw new Error('DynamoDB Local is started by the test file before hook: use it inside a test');
    return local;
  };
  return {
    get ddb() {
      return ddb();
    },
    async open(table, extra = {}, config = {}) {
      const s = await openDynamoDbStore({ engine: 'dynamodb', table, endpoint: ddb().endpoint, ...config }, extra);
      stores.push(s);
      return s;
    },
  };
}
