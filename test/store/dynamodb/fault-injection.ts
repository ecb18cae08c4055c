/**
 * Fault injection for the DynamoDB engine: a middleware on a real SDK client (talking to
 * a real DynamoDB Local) that fails a share of requests the way DynamoDB does.
 *
 * - before: the request never reaches the database (throttling or a 500).
 * - after: the request is APPLIED, then its response is thrown away and a 500 returned,
 *   the ambiguous case (a timeout after the write) that idempotency must survive.
 *
 * `only` restricts faults to some operations (e.g. BatchWriteItem).
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';

export interface FaultOptions {
  before: number;
  after: number;
  only?: readonly string[];
}

export interface FaultStats {
  requests: number;
  failedBefore: number;
  failedAfter: number;
}

export interface Faults {
  stats: FaultStats;
  set(opts: FaultOptions): void;
  off(): void;
}

function awsError(name: string, status: number): Error {
  const err = new Error(`injected ${name}`) as Error & { $metadata: { httpStatusCode: number }; $fault: string };
  err.name = name;
  err.$metadata = { httpStatusCode: status };
  err.$fault = status >= 500 ? 'server' : 'client';
  return err;
}

export function injectFaults(client: DynamoDBClient, initial: FaultOptions): Faults {
  let opts: FaultOptions = initial;
  const stats: FaultStats = { requests: 0, failedBefore: 0, failedAfter: 0 };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      stats.requests++;
      const op = (context as { commandName?: string }).commandName?.replace(/Command$/, '') ?? '';
      const applies = !opts.only || opts.only.includes(op);
      if (applies && Math.random() < opts.before) {
        stats.failedBefore++;
        throw Math.random() < 0.5 ? awsError('ThrottlingException', 400) : awsError('InternalServerError', 500);
      }
      const out = await next(args);
      if (applies && Math.random() < opts.after) {
        stats.failedAfter++;
        throw awsError('InternalServerError', 500);
      }
      return out;
    },
    { step: 'finalizeRequest', name: 'poboxFaultInjection' },
  );
  return {
    stats,
    set(o) {
      opts = o;
    },
    off() {
      opts = { before: 0, after: 0 };
    },
  };
}
