/**
 * Open the configured engine. Engines load lazily: a user of the embedded engine never
 * loads the AWS SDK, and the DynamoDB engine is an optional dependency.
 */
import { parseConfig, StoreConfigSchema, type StoreConfig } from '../core/config.js';
import { PoboxError } from '../core/errors.js';
import type { MailboxStore } from './contract.js';

export async function openStore(input: StoreConfig | unknown): Promise<MailboxStore> {
  const cfg = parseConfig(StoreConfigSchema, input, 'store config');
  if (cfg.worker) {
    const { openWorkerStore } = await import('./worker/host.js');
    return openWorkerStore({ config: { ...cfg, worker: false } });
  }
  switch (cfg.engine) {
    case 'lmdb': {
      const { openLmdbStore } = await import('./lmdb/index.js');
      return openLmdbStore({ path: cfg.path });
    }
    case 'dynamodb': {
      let mod;
      try {
        mod = await import('./dynamodb/index.js');
      } catch (err) {
        throw new PoboxError('UNAVAILABLE', 'the DynamoDB engine needs the optional dependency @aws-sdk/client-dynamodb', { cause: err });
      }
      return mod.openDynamoDbStore(cfg);
    }
  }
}
