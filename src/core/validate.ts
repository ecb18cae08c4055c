import { z } from 'zod';
import { PoboxError } from './errors.js';

export interface BadInputOptions {
  /** The field the whole input stands for (a query parameter, a token claim); issue paths go below it. */
  field?: string;
  /** List every issue, one per line (config errors), instead of the first only. */
  allIssues?: boolean;
}

/**
 * The one conversion from a zod failure to a PoboxError: BAD_REQUEST naming the first
 * offending field, so every entry point reports bad input the same way.
 */
export function badInputError(error: z.ZodError, what: string | undefined, opts: BadInputOptions = {}): PoboxError {
  const pathOf = (issue: z.core.$ZodIssue): string | undefined => {
    const parts = [...(opts.field === undefined ? [] : [opts.field]), ...issue.path.map(String)];
    return parts.length > 0 ? parts.join('.') : undefined;
  };
  const first = error.issues[0];
  const field = first ? pathOf(first) : opts.field;
  if (opts.allIssues) {
    const lines = error.issues.map((i) => `  ${pathOf(i) ?? '(root)'}: ${i.message}`);
    return new PoboxError('BAD_REQUEST', `invalid ${what ?? 'input'}:\n${lines.join('\n')}`, field === undefined ? undefined : { field });
  }
  const label = [what, field].filter((part) => part !== undefined && part !== '').join(': ');
  const detail = first ? first.message : 'invalid';
  return new PoboxError('BAD_REQUEST', label ? `${label}: ${detail}` : detail, field === undefined ? undefined : { field });
}

/**
 * A whole number given as text (a query parameter): decimal digits only, so '', ' 1',
 * '-1', '1e3' and '0x1' are refused with `message`; coerced by zod, then bounded by `schema`.
 */
export function intText<S extends z.ZodType<number, number>>(schema: S, message: string) {
  return z
    .string()
    .regex(/^\d{1,16}$/, message)
    .pipe(z.coerce.number<string>())
    .pipe(schema);
}

/** Parse untrusted input with a schema; a failure is a BAD_REQUEST from badInputError. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, what: string | undefined = 'input', opts: BadInputOptions = {}): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw badInputError(result.error, what, opts);
}
