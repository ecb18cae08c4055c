/**
 * The table the engine needs, as a CreateTable input (printed by
 * `pobox dynamodb table-definition` for infrastructure-as-code users) and created by
 * `pobox dynamodb create-table`: on-demand capacity by default, TTL on `ttl`, and the
 * layout marker (layout.ts) written once the table is ACTIVE.
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  PutItemCommand,
  UpdateTimeToLiveCommand,
  type CreateTableCommandInput,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { setTimeout as sleep } from 'node:timers/promises';
import { PoboxError } from '../../core/errors.js';
import { INDEX_NAME } from './keys.js';
import { layoutMarker } from './layout.js';

export const TTL_ATTRIBUTE = 'ttl';

export interface TableOptions {
  table: string;
  /** Provisioned capacity instead of on-demand (PAY_PER_REQUEST). */
  provisioned?: { readUnits: number; writeUnits: number };
}

export function tableDefinition(opts: TableOptions): CreateTableCommandInput {
  const throughput = opts.provisioned ? { ProvisionedThroughput: { ReadCapacityUnits: opts.provisioned.readUnits, WriteCapacityUnits: opts.provisioned.writeUnits } } : {};
  return {
    TableName: opts.table,
    AttributeDefinitions: [
      { AttributeName: 'pk', AttributeType: 'S' },
      { AttributeName: 'sk', AttributeType: 'S' },
      { AttributeName: 'gpk', AttributeType: 'S' },
      { AttributeName: 'gsk', AttributeType: 'S' },
    ],
    KeySchema: [
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: INDEX_NAME,
        KeySchema: [
          { AttributeName: 'gpk', KeyType: 'HASH' },
          { AttributeName: 'gsk', KeyType: 'RANGE' },
        ],
        // Only meta items are indexed (users() and the sweeper's walk need their keys); the
        // projection is the same as layout 1's so an upgraded table keeps its index.
        Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: ['seq'] },
        ...throughput,
      },
    ],
    BillingMode: opts.provisioned ? 'PROVISIONED' : 'PAY_PER_REQUEST',
    ...throughput,
  };
}

/** The same table as a CloudFormation resource, for templates. */
export function cloudFormationResource(opts: TableOptions): Record<string, unknown> {
  const def = tableDefinition(opts);
  return {
    Type: 'AWS::DynamoDB::Table',
    Properties: {
      ...def,
      TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
    },
  };
}

export interface CreateTableResult {
  created: boolean;
  ttlEnabled: boolean;
}

/** Create the table if missing, wait until it is ACTIVE, and enable TTL. */
export async function createTable(client: DynamoDBClient, opts: TableOptions & { ttl?: boolean; timeoutMs?: number }): Promise<CreateTableResult> {
  let created = false;
  try {
    await client.send(new CreateTableCommand(tableDefinition(opts)));
    created = true;
  } catch (err) {
    if ((err as Error).name !== 'ResourceInUseException') throw wrap('CreateTable', err);
  }
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  for (let delay = 100; ; delay = Math.min(delay * 2, 2000)) {
    const d = await client.send(new DescribeTableCommand({ TableName: opts.table })).catch((err: unknown) => {
      throw wrap('DescribeTable', err);
    });
    const indexesActive = (d.Table?.GlobalSecondaryIndexes ?? []).every((i) => i.IndexStatus === 'ACTIVE');
    if (d.Table?.TableStatus === 'ACTIVE' && indexesActive) break;
    if (Date.now() > deadline) throw new PoboxError('UNAVAILABLE', `table ${opts.table} did not become ACTIVE in time`);
    await sleep(delay);
  }
  // Only a table made here is known to be empty; an existing one is checked when the engine opens it.
  if (created) {
    await client.send(new PutItemCommand({ TableName: opts.table, Item: layoutMarker(), ConditionExpression: 'attribute_not_exists(pk)' })).catch((err: unknown) => {
      if ((err as Error).name !== 'ConditionalCheckFailedException') throw wrap('PutItem', err);
    });
  }
  let ttlEnabled = false;
  if (opts.ttl ?? true) {
    const cur = await client.send(new DescribeTimeToLiveCommand({ TableName: opts.table })).catch(() => undefined);
    const status = cur?.TimeToLiveDescription?.TimeToLiveStatus;
    if (status !== 'ENABLED' && status !== 'ENABLING') {
      await client.send(new UpdateTimeToLiveCommand({ TableName: opts.table, TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true } })).catch((err: unknown) => {
        throw wrap('UpdateTimeToLive', err);
      });
    }
    ttlEnabled = true;
  }
  return { created, ttlEnabled };
}

function wrap(what: string, err: unknown): PoboxError {
  return new PoboxError('UNAVAILABLE', `DynamoDB ${what} failed: ${(err as Error).name}: ${(err as Error).message}`, { cause: err });
}
