// Placeholder replaced by the DynamoDB engine work (issue 4); keeps src/store/open.ts compiling.
import type { DynamoDbConfig } from '../../core/config.js';
import { PoboxError } from '../../core/errors.js';
import type { MailboxStore } from '../contract.js';

export async function openDynamoDbStore(_cfg: DynamoDbConfig): Promise<MailboxStore> {
  throw new PoboxError('UNAVAILABLE', 'the DynamoDB engine is not built yet');
}
