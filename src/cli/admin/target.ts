/**
 * Picks what the admin commands act on (contract.ts): a running server over HTTP, or the
 * data dir of a stopped server. Each target is loaded only when chosen.
 */
import { z } from 'zod';
import { PoboxError } from '../../core/errors.js';
import { parseInput } from '../../core/validate.js';
import type { AdminTarget, DataDirOptions } from './contract.js';

export type { AdminTarget, DataDirOptions } from './contract.js';

/** The flags every admin command takes. */
export interface TargetFlags {
  url?: string;
  adminKey?: string;
  apiKey?: string;
  dataDir?: string;
  json?: boolean;
}

const TargetSchema = z
  .object({
    url: z.url('--url must be a URL like http://127.0.0.1:8080').optional(),
    adminKey: z.string().min(1).optional(),
    apiKey: z.string().min(1).optional(),
    dataDir: z.string().min(1).optional(),
  })
  .refine((t) => !(t.url && t.dataDir), { message: 'give --url or --data-dir, not both', path: ['url'] });

/**
 * Pick the target: a URL means a running server; otherwise the data dir is opened
 * directly. The flags come from addTargetOptions (options.ts), which has already applied
 * the environment variables and chosen between the two.
 */
export async function openTarget(flags: TargetFlags, need: 'admin' | 'send', opts: DataDirOptions = {}): Promise<AdminTarget> {
  const t = parseInput(
    TargetSchema,
    { url: flags.url, adminKey: flags.adminKey, apiKey: flags.apiKey, dataDir: flags.url ? undefined : (flags.dataDir ?? './.pobox-data') },
    'options',
  );
  if (t.url) {
    const key = need === 'send' ? (t.apiKey ?? t.adminKey) : t.adminKey;
    if (!key) {
      const which = need === 'send' ? '--api-key (or POBOX_API_KEY), a key with the send scope' : '--admin-key (or POBOX_ADMIN_KEY), a key with the admin scope';
      throw new PoboxError('BAD_REQUEST', `${t.url} needs ${which}`, { field: need === 'send' ? 'apiKey' : 'adminKey' });
    }
    const { HttpTarget } = await import('./http-target.js');
    return new HttpTarget(t.url, key);
  }
  const { openDataDirTarget } = await import('./data-dir-target.js');
  return openDataDirTarget(t.dataDir!, opts);
}

/** Run `fn` on the target and always close it. */
export async function withTarget<T>(flags: TargetFlags, need: 'admin' | 'send', fn: (t: AdminTarget) => Promise<T>, opts: DataDirOptions = {}): Promise<T> {
  const target = await openTarget(flags, need, opts);
  try {
    return await fn(target);
  } finally {
    await target.close();
  }
}
