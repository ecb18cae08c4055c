/**
 * A model of what DynamoDB bills for each request, from AWS's published rules, applied
 * by a middleware to the requests a real SDK client sends. Needed because DynamoDB
 * Local reports transactions wrong (a flat 2 units per TransactWriteItems, whatever the
 * number of items), so its ConsumedCapacity alone understates the transactional engine.
 *
 * Rules used (on-demand and provisioned alike):
 * - write: 1 unit per 1 KB of item (rounded up); transactional writes 2 units per KB;
 *   a write that adds or removes an item of a global secondary index costs 1 more unit
 *   on the index (our index projects keys and seq, so entries are small).
 * - strongly consistent read: 1 unit per 4 KB (GetItem per item, Query per page of
 *   summed sizes, BatchGetItem per item, a missing item still costs the minimum);
 *   eventually consistent (index queries) half that; transactional reads 2 units per 4 KB.
 * Deleted items bill by their size, which the request does not carry: this model counts
 * 1 KB, right for chat-sized messages (the benchmark's bodies are smaller than that).
 * A conditional write refused by its condition is billed as a write of the item it found
 * (DynamoDB Local reports nothing for it).
 */
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { itemSize } from '../../src/store/dynamodb/codec.js';

export interface ModelledUnits {
  read: number;
  write: number;
}

type Item = Record<string, AttributeValue>;
const kb = (item: Item): number => Math.max(1, Math.ceil(itemSize(item) / 1024));
const fourKb = (bytes: number): number => Math.max(1, Math.ceil(bytes / 4096));
const inIndex = (item: Item): boolean => item.gpk !== undefined;

interface Put {
  Item?: Item;
  ConditionExpression?: string;
}

/** Does this put add an entry to the index? Meta items only when new (their index keys never change). */
function indexWrite(put: Put): number {
  if (!put.Item || !inIndex(put.Item)) return 0;
  const isMeta = put.Item.sk?.S === '#meta';
  return !isMeta || put.ConditionExpression === 'attribute_not_exists(pk)' ? 1 : 0;
}

export function modelBilling(client: DynamoDBClient): { units: ModelledUnits } {
  const units: ModelledUnits = { read: 0, write: 0 };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const op = (context as { commandName?: string }).commandName ?? '';
      let out: Awaited<ReturnType<typeof next>>;
      try {
        out = await next(args);
      } catch (err) {
        // A conditional write refused by its condition is billed too, by the item's size
        // (returned with the failure when asked for, else at least 1 unit).
        const e = err as { name?: string; Item?: Item };
        if (e?.name === 'ConditionalCheckFailedException') units.write += e.Item ? kb(e.Item) : 1;
        throw err;
      }
      const input = args.input as Record<string, any>;
      const output = out.output as Record<string, any>;
      switch (op) {
        case 'GetItemCommand':
          units.read += output.Item ? fourKb(itemSize(output.Item)) : 1;
          break;
        case 'QueryCommand': {
          const bytes = ((output.Items ?? []) as Item[]).reduce((a, i) => a + itemSize(i), 0);
          units.read += input.IndexName ? fourKb(bytes) / 2 : fourKb(bytes);
          break;
        }
        case 'BatchGetItemCommand': {
          for (const r of Object.values(input.RequestItems as Record<string, { Keys: unknown[]; ConsistentRead?: boolean }>)) {
            units.read += r.Keys.length * (r.ConsistentRead ? 1 : 0.5); // each item up to 4 KB, found or not
          }
          break;
        }
        case 'TransactGetItemsCommand':
          units.read += 2 * (input.TransactItems as unknown[]).length;
          break;
        case 'PutItemCommand':
          units.write += kb(input.Item) + indexWrite(input as Put);
          break;
        case 'UpdateItemCommand':
          // Only the meta item is updated (seq reservations, acks, devices, purge, sweeper):
          // billed on the larger of its sizes before and after, under 1 KB (counters and
          // device cursors). A reservation that creates a mailbox also writes its users-index
          // entry, once per mailbox; not modelled (the benchmarks register devices first).
          units.write += 1;
          break;
        case 'DeleteItemCommand':
          units.write += 1 + (/^[de]#/.test((input.Key as Item).sk?.S ?? '') ? 1 : 0);
          break;
        case 'BatchWriteItemCommand': {
          for (const reqs of Object.values(input.RequestItems as Record<string, Array<{ PutRequest?: Put; DeleteRequest?: unknown }>>)) {
            for (const r of reqs) units.write += r.PutRequest?.Item ? kb(r.PutRequest.Item) + indexWrite(r.PutRequest) : 1;
          }
          // Unprocessed items were not written; they are counted when retried.
          for (const reqs of Object.values((output.UnprocessedItems ?? {}) as Record<string, unknown[]>)) units.write -= reqs.length;
          break;
        }
        case 'TransactWriteItemsCommand':
          for (const t of input.TransactItems as Array<{ Put?: Put; Delete?: { Key: Item }; Update?: unknown; ConditionCheck?: unknown }>) {
            if (t.Put?.Item) units.write += 2 * kb(t.Put.Item) + indexWrite(t.Put);
            else if (t.Delete) units.write += 2 + (/^[de]#/.test(t.Delete.Key.sk?.S ?? '') ? 1 : 0);
            else if (t.Update) units.write += 2;
            else if (t.ConditionCheck) units.read += 2;
          }
          break;
        default:
          break;
      }
      return out;
    },
    { step: 'finalizeRequest', name: 'poboxBillingModel' },
  );
  return { units };
}
