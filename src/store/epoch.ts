import { randomUUID } from 'node:crypto';

/** A fresh mailbox epoch. Seqs are only comparable within one epoch. */
export function newEpoch(): string {
  return randomUUID().replace(/-/g, '').slice(0, 16);
}
