import type { z } from 'zod';
import { PoboxError } from './errors.js';

/**
 * Parse untrusted input with a schema. A failure becomes a BAD_REQUEST that names the
 * first offending field, so every entry point reports bad input the same way.
 */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, what = 'input'): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.map(String).join('.') : undefined;
  const detail = issue ? issue.message : 'invalid';
  throw new PoboxError('BAD_REQUEST', field ? `${what}: ${field}: ${detail}` : `${what}: ${detail}`, field ? { field } : undefined);
}
