/**
 * `pobox dynamodb create-table --table T [--endpoint URL] [--region R]` creates the table
 * the DynamoDB engine needs (on-demand capacity unless --provisioned), waits until it
 * is ACTIVE and enables TTL. `pobox dynamodb table-definition --table T [--format
 * create-table|cloudformation]` prints the same table as JSON for infrastructure as code.
 * `pobox dynamodb migrate --table T` upgrades a table written by an older engine (layout
 * 1) to the current layout in place, with every node stopped (src/store/dynamodb/layout.ts).
 * The AWS SDK is loaded only here, when one of these runs.
 */
import type { Command } from 'commander';
import { z } from 'zod';
import { parseInput } from '../../core/validate.js';
import { DynamoDbConfigSchema } from '../../core/config.js';
import { PoboxError } from '../../core/errors.js';

const TableFlagsSchema = z.object({
  table: DynamoDbConfigSchema.shape.table,
  region: z.string().min(1).default('us-east-1'),
  endpoint: z.url().optional(),
  provisioned: z
    .string()
    .regex(/^\d+,\d+$/, 'provisioned must be READ,WRITE capacity units, e.g. 5,5')
    .optional(),
  ttl: z.boolean().default(true),
  format: z.enum(['create-table', 'cloudformation']).default('create-table'),
});
type TableFlags = z.input<typeof TableFlagsSchema>;

function provisioned(spec: string | undefined): { readUnits: number; writeUnits: number } | undefined {
  if (spec === undefined) return undefined;
  const [r, w] = spec.split(',').map(Number);
  if (!r || !w) throw new PoboxError('BAD_REQUEST', 'provisioned capacity units must be at least 1', { field: 'provisioned' });
  return { readUnits: r, writeUnits: w };
}

async function loadSdk(): Promise<{
  table: typeof import('../../store/dynamodb/table.js');
  engine: typeof import('../../store/dynamodb/index.js');
  layout: typeof import('../../store/dynamodb/layout.js');
  queries: typeof import('../../store/dynamodb/queries.js');
  retry: typeof import('../../store/dynamodb/retry.js');
  sdk: typeof import('@aws-sdk/client-dynamodb');
}> {
  try {
    return {
      table: await import('../../store/dynamodb/table.js'),
      engine: await import('../../store/dynamodb/index.js'),
      layout: await import('../../store/dynamodb/layout.js'),
      queries: await import('../../store/dynamodb/queries.js'),
      retry: await import('../../store/dynamodb/retry.js'),
      sdk: await import('@aws-sdk/client-dynamodb'),
    };
  } catch (err) {
    throw new PoboxError('UNAVAILABLE', 'the DynamoDB commands need the optional dependency @aws-sdk/client-dynamodb', { cause: err });
  }
}

type Sdk = Awaited<ReturnType<typeof loadSdk>>;

/** --table and where DynamoDB is: the options of the commands that talk to it. */
function tableOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--table <name>', 'table name')
    .option('--region <region>', 'AWS region', 'us-east-1')
    .option('--endpoint <url>', 'endpoint of DynamoDB Local or a DynamoDB-compatible store');
}

/** Run `fn` with a DynamoDB client for the flags, destroyed afterwards. */
async function withClient<T>(f: z.output<typeof TableFlagsSchema>, fn: (client: InstanceType<Sdk['sdk']['DynamoDBClient']>, sdk: Sdk) => Promise<T>): Promise<T> {
  const sdk = await loadSdk();
  const client = new sdk.sdk.DynamoDBClient(sdk.engine.clientConfig({ region: f.region, ...(f.endpoint ? { endpoint: f.endpoint } : {}) }));
  try {
    return await fn(client, sdk);
  } finally {
    client.destroy();
  }
}

export function registerDynamoDb(program: Command): void {
  const cmd = program.command('dynamodb').description('set up the DynamoDB table the dynamodb store engine uses');

  tableOptions(cmd.command('create-table').description('create the table (on-demand capacity by default), wait until ACTIVE, enable TTL'))
    .option('--provisioned <read,write>', 'provisioned capacity units instead of on-demand')
    .option('--no-ttl', 'do not enable TTL (not recommended)')
    .action(async (opts: TableFlags) => {
      const f = parseInput(TableFlagsSchema, opts, 'dynamodb create-table');
      const prov = provisioned(f.provisioned);
      await withClient(f, async (client, { table }) => {
        const r = await table.createTable(client, { table: f.table, ttl: f.ttl, ...(prov ? { provisioned: prov } : {}) });
        process.stdout.write(`${r.created ? 'created' : 'already exists'}: ${f.table} (ACTIVE${r.ttlEnabled ? ', TTL on attribute ttl' : ', TTL not enabled'})\n`);
      });
    });

  tableOptions(cmd.command('migrate').description('upgrade a table written by an older pobox (layout 1) to the current layout; stop every node first')).action(
    async (opts: TableFlags) => {
      const f = parseInput(TableFlagsSchema, opts, 'dynamodb migrate');
      await withClient(f, async (client, { layout, queries, retry }) => {
        const t = new queries.TableClient(client, f.table, retry.DEFAULT_RETRY);
        const r = await layout.migrateTable(t, 86_400);
        process.stdout.write(r.alreadyDone ? `${f.table} already has the current layout\n` : `migrated ${f.table}: ${r.mailboxes} mailboxes, ${r.gapsClosed} gaps closed\n`);
      });
    },
  );

  cmd
    .command('table-definition')
    .description('print the table definition as JSON (CreateTable input, or a CloudFormation resource)')
    .requiredOption('--table <name>', 'table name')
    .option('--format <format>', 'create-table or cloudformation', 'create-table')
    .option('--provisioned <read,write>', 'provisioned capacity units instead of on-demand')
    .action(async (opts: TableFlags) => {
      const f = parseInput(TableFlagsSchema, opts, 'dynamodb table-definition');
      const { table } = await loadSdk();
      const prov = provisioned(f.provisioned);
      const o = { table: f.table, ...(prov ? { provisioned: prov } : {}) };
      const def = f.format === 'cloudformation' ? { Resources: { PoboxTable: table.cloudFormationResource(o) } } : table.tableDefinition(o);
      process.stdout.write(`${JSON.stringify(def, null, 2)}\n`);
      if (f.format === 'create-table') {
        // The CreateTable input cannot carry TTL; say what else to run, off stdout so the JSON pipes cleanly.
        process.stderr.write(
          `then enable TTL: aws dynamodb update-time-to-live --table-name ${f.table} --time-to-live-specification Enabled=true,AttributeName=${table.TTL_ATTRIBUTE}\n`,
        );
      }
    });
}
