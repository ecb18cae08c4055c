import { z } from 'zod';
import { PoboxError } from './errors.js';

/**
 * How bad input is named in its error, always given by the caller (there is no default to
 * fall back on by passing `undefined`): a string says what the input is ('send', 'pull',
 * '--ttl'); the object form adds or replaces it with the field the whole input stands for
 * (a query parameter, a token claim; issue paths go below it), and can list every issue.
 */
export type InputLabel = string | { what?: string; field?: string; allIssues?: boolean };

/**
 * The one conversion from a zod failure to a PoboxError: BAD_REQUEST naming the first
 * offending field, so every entry point reports bad input the same way.
 */
export function badInputError(error: z.ZodError, label: InputLabel): PoboxError {
  const { what, field: base, allIssues } = typeof label === 'string' ? { what: label, field: undefined, allIssues: false } : label;
  const pathOf = (issue: z.core.$ZodIssue): string | undefined => {
    const parts = [...(base === undefined ? [] : [base]), ...issue.path.map(String)];
    return parts.length > 0 ? parts.join('.') : undefined;
  };
  const first = error.issues[0];
  const field = first ? pathOf(first) : base;
  if (allIssues) {
    const lines = error.issues.map((i) => `  ${pathOf(i) ?? '(root)'}: ${i.message}`);
    return new PoboxError('BAD_REQUEST', `invalid ${what ?? 'input'}:\n${lines.join('\n')}`, field === undefined ? undefined : { field });
  }
  const prefix = [what, field].filter((part) => part !== undefined && part !== '').join(': ');
  const detail = first ? first.message : 'invalid';
  return new PoboxError('BAD_REQUEST', prefix ? `${prefix}: ${detail}` : detail, field === undefined ? undefined : { field });
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
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, label: InputLabel): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw badInputError(result.error, label);
}
