import { z } from 'zod';

/**
 * Users and devices are opaque ids from a small, safe alphabet: they appear in storage
 * keys, URLs, Redis channel names and log lines, so nothing that needs escaping is let in.
 */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$/;
/** A sender's message id: the same alphabet, longer, so UUIDs and ULIDs with prefixes fit. */
export const MESSAGE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

const idMessage = 'must be 1-64 characters of A-Z a-z 0-9 . _ : @ - starting with a letter or digit';

export const UserIdSchema = z.string().regex(ID_PATTERN, `user id ${idMessage}`);
export const DeviceIdSchema = z.string().regex(ID_PATTERN, `device id ${idMessage}`);
export const MessageIdSchema = z.string().regex(MESSAGE_ID_PATTERN, 'message id must be 1-128 characters of A-Z a-z 0-9 . _ : @ - starting with a letter or digit');

export type UserId = string;
export type DeviceId = string;
export type MessageId = string;

/** A per-user sequence number: 1, 2, 3, ... never reused; gaps allowed. */
export const SeqSchema = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
export type Seq = number;

export function isValidId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value);
}
