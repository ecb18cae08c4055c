/** Command-line flags shared by every benchmark script. */
import { parseArgs } from 'node:util';

export interface BenchArgs {
  quick: boolean;
  /** Extra flags, by name, for the script to read. */
  values: Record<string, string | boolean | undefined>;
}

export function benchArgs(extra: Record<string, { type: 'string' | 'boolean' }> = {}): BenchArgs {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { quick: { type: 'boolean', default: false }, ...extra },
    strict: false,
    allowPositionals: true,
  });
  return { quick: values.quick === true || process.env.BENCH_QUICK === '1', values: values as BenchArgs['values'] };
}

/** A numeric flag, e.g. `--max-n 1000000`. */
export function numberFlag(args: BenchArgs, name: string, fallback: number): number {
  const v = args.values[name];
  if (typeof v !== 'string') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got ${v}`);
  return n;
}
