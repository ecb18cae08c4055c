/**
 * Every request the engine makes goes through here: strongly consistent reads of one
 * user's items, single-item conditional writes, batch deletes and the index walk. Each
 * call retries transient failures (throttling, 5xx, network: `maxAttempts`; conflicts:
 * the contention time budget) with backoff and full jitter, counts the items
 * it examined and the capacity DynamoDB reports (ReturnConsumedCapacity: TOTAL), and
 * turns what cannot be retried away into a PoboxError: UNAVAILABLE, so a caller never
 * mistakes a failure for success.
 */
import {
  BatchGetItemCommand,
  BatchWriteItemCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  type ConsumedCapacity,
  type DynamoDBClient,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { PoboxError } from '../../core/errors.js';
import type { UserId } from '../../core/ids.js';
import type { StoreCounters } from '../contract.js';
import { decodeMeta, encodeMeta, itemSize, type Item, type MetaValue } from './codec.js';
import { INDEX_NAME, itemKey, META_SK } from './keys.js';
import type { MetaUpdate } from './meta-writes.js';
import { contentionPause, failedConditions, isConflict, isStale, isTransient, pause, withinBudget, withinFaultBudget, type RetryPolicy } from './retry.js';

/** Capacity units DynamoDB reported for this engine's requests. */
export interface CapacityCounters {
  readUnits: number;
  writeUnits: number;
  requests: number;
  retries: number;
  /** Conditional writes whose condition failed: DynamoDB bills them but reports no capacity for them. */
  failedWrites: number;
  /** What those cost by AWS's rule (1 write unit per KB of the item, at least 1), not in writeUnits. */
  failedWriteUnits: number;
}

/** Thrown when a conditional write found the data changed since we read it. */
export class StaleRead extends Error {
  override readonly name = 'StaleRead';
  /** For a transaction: the indexes of the items whose condition failed, when DynamoDB said. */
  failed: number[] = [];
  /** The meta item as it was when the condition failed (an update of the meta item asks DynamoDB for it). */
  current?: MetaValue;
}

export class TableClient {
  readonly counts: StoreCounters = { keysRead: 0, keysWritten: 0, keysDeleted: 0 };
  readonly capacity: CapacityCounters = { readUnits: 0, writeUnits: 0, requests: 0, retries: 0, failedWrites: 0, failedWriteUnits: 0 };

  constructor(
    readonly client: DynamoDBClient,
    readonly table: string,
    readonly retry: RetryPolicy,
  ) {}

  private account(kind: 'read' | 'write', consumed: ConsumedCapacity | ConsumedCapacity[] | undefined): void {
    for (const c of Array.isArray(consumed) ? consumed : consumed ? [consumed] : []) {
      if (c.ReadCapacityUnits !== undefined || c.WriteCapacityUnits !== undefined) {
        this.capacity.readUnits += c.ReadCapacityUnits ?? 0;
        this.capacity.writeUnits += c.WriteCapacityUnits ?? 0;
      } else if (kind === 'read') {
        this.capacity.readUnits += c.CapacityUnits ?? 0;
      } else {
        this.capacity.writeUnits += c.CapacityUnits ?? 0;
      }
    }
  }

  /**
   * One request with its own deadline: after requestTimeoutMs the caller gets a
   * TimeoutError (a fault, retried within the budgets) even when the client was built
   * without socket timeouts (a client passed in by the caller), so a frozen store never
   * holds an operation longer than the budgets. An abandoned request may still be
   * applied later: callers treat a timeout like any ambiguous failure.
   */
  private async timed<T>(send: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new Error(`no answer from DynamoDB within ${this.retry.requestTimeoutMs} ms`);
        err.name = 'TimeoutError';
        reject(err);
      }, this.retry.requestTimeoutMs);
    });
    try {
      return await Promise.race([send(), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Send with retries on transient failures (at most maxAttempts, within the fault time
   * budget); a stale condition is thrown as StaleRead.
   */
  private async call<T extends { ConsumedCapacity?: ConsumedCapacity | ConsumedCapacity[] }>(kind: 'read' | 'write', what: string, send: () => Promise<T>): Promise<T> {
    const startedAt = Date.now();
    let conflicts = 0;
    for (let attempt = 0; ;) {
      try {
        this.capacity.requests++;
        const out = await this.timed(send);
        this.account(kind, out.ConsumedCapacity);
        return out;
      } catch (err) {
        if (isStale(err) && !isTransient(err)) {
          const stale = new StaleRead(`${what}: the data changed under us`, { cause: err });
          stale.failed = failedConditions(err);
          if (kind === 'write') {
            // Billed by the item's size (the one DynamoDB returned, else at least 1 unit); no response reports it.
            const old = (err as { Item?: Item }).Item;
            this.capacity.failedWrites++;
            this.capacity.failedWriteUnits += old ? Math.max(1, Math.ceil(itemSize(old) / 1024)) : 1;
          }
          throw stale;
        }
        // Someone wrote the same item at that moment; nothing was applied and what we
        // computed is still right unless a condition says otherwise: send it again.
        if (isConflict(err) && withinBudget(startedAt, this.retry)) {
          this.capacity.retries++;
          await contentionPause(conflicts++, this.retry);
          continue;
        }
        attempt++;
        if (!isTransient(err) || attempt >= this.retry.maxAttempts || !withinFaultBudget(startedAt, this.retry)) {
          throw new PoboxError('UNAVAILABLE', `DynamoDB ${what} failed: ${(err as Error).name}: ${(err as Error).message}`, { cause: err });
        }
        this.capacity.retries++;
        await pause(attempt - 1, this.retry);
      }
    }
  }

  async getMeta(user: UserId): Promise<MetaValue | undefined> {
    const out = await this.call('read', 'GetItem', () =>
      this.client.send(new GetItemCommand({ TableName: this.table, Key: itemKey(user, META_SK), ConsistentRead: true, ReturnConsumedCapacity: 'TOTAL' })),
    );
    this.counts.keysRead++;
    return out.Item ? decodeMeta(out.Item) : undefined;
  }

  /** A user's first meta item, written only if there is none yet (a send may have created it first: StaleRead). */
  async createMeta(user: UserId, meta: MetaValue): Promise<void> {
    await this.call('write', 'PutItem', () =>
      this.client.send(
        new PutItemCommand({ TableName: this.table, Item: encodeMeta(user, meta), ConditionExpression: 'attribute_not_exists(pk)', ReturnConsumedCapacity: 'TOTAL' }),
      ),
    );
    this.counts.keysWritten++;
  }

  /**
   * A conditional UpdateItem of the meta item (meta-writes.ts builds it); the item after it.
   * StaleRead when its condition failed, carrying the item as it was then (DynamoDB returns
   * it with the failure at no read cost), so the writer can compute again without a read.
   */
  async updateMeta(user: UserId, u: MetaUpdate): Promise<MetaValue> {
    try {
      const out = await this.call('write', 'UpdateItem', () =>
        this.client.send(
          new UpdateItemCommand({
            TableName: this.table,
            Key: itemKey(user, META_SK),
            ...u,
            ReturnValues: 'ALL_NEW',
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      );
      this.counts.keysWritten++;
      return decodeMeta(out.Attributes!);
    } catch (err) {
      if (err instanceof StaleRead) {
        const item = (err.cause as { Item?: Item } | undefined)?.Item;
        if (item && item.epoch !== undefined) err.current = decodeMeta(item);
      }
      throw err;
    }
  }

  /**
   * The meta item's conditional update and unconditional puts of other items of the same
   * user, in one TransactWriteItems (the sweeper's tombstones with the update that counts
   * them). Every item is billed twice (2 write units per KB). StaleRead when the update's
   * condition failed: then nothing was written. A retry after an ambiguous failure (applied,
   * then timed out) fails its own condition like updateMeta's: the caller reads again and
   * finds the tombstones, counted.
   */
  async updateMetaWith(user: UserId, u: MetaUpdate, puts: readonly Item[]): Promise<void> {
    await this.call('write', 'TransactWriteItems', () =>
      this.client.send(
        new TransactWriteItemsCommand({
          TransactItems: [...puts.map((Item) => ({ Put: { TableName: this.table, Item } })), { Update: { TableName: this.table, Key: itemKey(user, META_SK), ...u } }],
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
    this.counts.keysWritten += puts.length + 1;
  }

  /** Consistent GetItem of any item of one user. */
  async getItem(user: UserId, sk: string): Promise<Item | undefined> {
    const out = await this.call('read', 'GetItem', () =>
      this.client.send(new GetItemCommand({ TableName: this.table, Key: itemKey(user, sk), ConsistentRead: true, ReturnConsumedCapacity: 'TOTAL' })),
    );
    this.counts.keysRead++;
    return out.Item;
  }

  /** A put conditioned on `condition` (default: no item there yet); false when the condition failed. */
  async putIf(item: Item, condition = 'attribute_not_exists(pk)', values?: Item, names?: Record<string, string>): Promise<boolean> {
    try {
      await this.call('write', 'PutItem', () =>
        this.client.send(
          new PutItemCommand({
            TableName: this.table,
            Item: item,
            ConditionExpression: condition,
            ...(values ? { ExpressionAttributeValues: values } : {}),
            ...(names ? { ExpressionAttributeNames: names } : {}),
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      );
    } catch (err) {
      if (err instanceof StaleRead) return false;
      throw err;
    }
    this.counts.keysWritten++;
    return true;
  }

  /** An unconditional put (the layout marker, migration). */
  async put(item: Item): Promise<void> {
    await this.call('write', 'PutItem', () => this.client.send(new PutItemCommand({ TableName: this.table, Item: item, ReturnConsumedCapacity: 'TOTAL' })));
    this.counts.keysWritten++;
  }

  /**
   * One strongly consistent Query page of one user's range [fromSk, toSk], newest first
   * when `descending`; `more` when DynamoDB stopped at the limit.
   */
  async queryPage(user: UserId, fromSk: string, toSk: string, limit: number, descending: boolean): Promise<{ items: Item[]; more: boolean }> {
    const out = await this.queryOnce(user, fromSk, toSk, limit, descending, undefined);
    return { items: out.Items ?? [], more: out.LastEvaluatedKey !== undefined };
  }

  /**
   * Strongly consistent Query over one user's sort-key range [fromSk, toSk], in order.
   * `onPage` sees each page's items and returns false to stop early. Every item DynamoDB
   * examined is counted (ScannedCount), not only those returned.
   */
  async queryRange(user: UserId, fromSk: string, toSk: string, pageLimit: number, onPage: (items: Item[]) => boolean): Promise<void> {
    let start: Item | undefined;
    for (;;) {
      const out = await this.queryOnce(user, fromSk, toSk, pageLimit, false, start);
      if (!onPage(out.Items ?? [])) return;
      if (!out.LastEvaluatedKey) return;
      start = out.LastEvaluatedKey;
    }
  }

  /** One Query request of a user's range, every examined item counted. */
  private async queryOnce(user: UserId, fromSk: string, toSk: string, limit: number, descending: boolean, start: Item | undefined) {
    const out = await this.call('read', 'Query', () =>
      this.client.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: 'pk = :u AND sk BETWEEN :a AND :b',
          ExpressionAttributeValues: { ':u': { S: user }, ':a': { S: fromSk }, ':b': { S: toSk } },
          ConsistentRead: true,
          ScanIndexForward: !descending,
          Limit: limit,
          ExclusiveStartKey: start,
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
    this.counts.keysRead += out.ScannedCount ?? out.Items?.length ?? 0;
    return out;
  }

  /** BatchGetItem of one user's items by sort key (consistent unless told); retries unprocessed keys. */
  async getMany(user: UserId, sks: readonly string[], consistent = true): Promise<Map<string, Item>> {
    return this.getKeys(
      sks.map((sk) => itemKey(user, sk)),
      consistent,
    );
  }

  /** BatchGetItem of any keys; the found items by sort key, or by partition key with `byPk` (one item per user). */
  async getKeys(allKeys: ReadonlyArray<{ pk: { S: string }; sk: { S: string } }>, consistent: boolean, byPk = false): Promise<Map<string, Item>> {
    const found = new Map<string, Item>();
    for (let i = 0; i < allKeys.length; i += 100) {
      let keys = allKeys.slice(i, i + 100);
      for (let attempt = 0; keys.length > 0; attempt++) {
        if (attempt >= this.retry.maxAttempts) throw new PoboxError('UNAVAILABLE', 'DynamoDB BatchGetItem left keys unprocessed');
        if (attempt > 0) await pause(attempt, this.retry);
        const out = await this.call('read', 'BatchGetItem', () =>
          this.client.send(new BatchGetItemCommand({ RequestItems: { [this.table]: { Keys: keys, ConsistentRead: consistent } }, ReturnConsumedCapacity: 'TOTAL' })),
        );
        for (const item of out.Responses?.[this.table] ?? []) {
          this.counts.keysRead++;
          found.set(byPk ? item.pk!.S! : item.sk!.S!, item);
        }
        keys = (out.UnprocessedKeys?.[this.table]?.Keys ?? []) as typeof keys;
      }
    }
    return found;
  }

  /** Unconditional deletes of one user's items, 25 a request; unprocessed items retried. */
  async deleteMany(user: UserId, sks: readonly string[]): Promise<void> {
    for (let i = 0; i < sks.length; i += 25) {
      let reqs: WriteRequest[] = sks.slice(i, i + 25).map((sk) => ({ DeleteRequest: { Key: itemKey(user, sk) } }));
      for (let attempt = 0; reqs.length > 0; attempt++) {
        if (attempt >= this.retry.maxAttempts) throw new PoboxError('UNAVAILABLE', 'DynamoDB BatchWriteItem left deletes unprocessed');
        if (attempt > 0) await pause(attempt, this.retry);
        const sent = reqs.length;
        const out = await this.call('write', 'BatchWriteItem', () =>
          this.client.send(new BatchWriteItemCommand({ RequestItems: { [this.table]: reqs }, ReturnConsumedCapacity: 'TOTAL' })),
        );
        reqs = out.UnprocessedItems?.[this.table] ?? [];
        this.counts.keysDeleted += sent - reqs.length;
      }
    }
  }

  /** Eventually consistent walk of the sparse index: items with gpk = partition and gsk <= upTo. */
  async queryIndex(partition: string, upTo: string | undefined, after: string | undefined, limit: number): Promise<Item[]> {
    const values: Item = { ':p': { S: partition } };
    const conds = ['gpk = :p'];
    if (upTo !== undefined && after !== undefined) {
      conds.push('gsk BETWEEN :a AND :b');
      values[':a'] = { S: after };
      values[':b'] = { S: upTo };
    } else if (upTo !== undefined) {
      conds.push('gsk <= :b');
      values[':b'] = { S: upTo };
    } else if (after !== undefined) {
      conds.push('gsk > :a');
      values[':a'] = { S: after };
    }
    const items: Item[] = [];
    let start: Item | undefined;
    while (items.length < limit) {
      const out = await this.call('read', 'Query(index)', () =>
        this.client.send(
          new QueryCommand({
            TableName: this.table,
            IndexName: INDEX_NAME,
            KeyConditionExpression: conds.join(' AND '),
            ExpressionAttributeValues: values,
            Limit: limit - items.length,
            ExclusiveStartKey: start,
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      );
      this.counts.keysRead += out.ScannedCount ?? out.Items?.length ?? 0;
      items.push(...(out.Items ?? []));
      if (!out.LastEvaluatedKey) break;
      start = out.LastEvaluatedKey;
    }
    return items;
  }
}
