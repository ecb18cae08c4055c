/**
 * The store conformance suite: one set of behaviours every engine must pass, run
 * unchanged against each of them through the post office.
 *
 * How an engine joins: add `test/conformance/<engine>.test.ts` that calls
 *
 *   defineConformance('<engine>', async () => ({
 *     store,                     // an open MailboxStore over a fresh, empty namespace
 *     reopen: async () => store2, // open the SAME data again; the suite has closed `store` first
 *     cleanup: async () => {},    // delete the namespace; the suite has closed every store first
 *   }));
 *
 * The factory is called once per behaviour, so each one gets its own namespace (a temp
 * dir, a table, a key prefix). The suite never sleeps: time comes from a FakeClock it
 * moves by hand, and the background sweeper is off (tests call sweepNow()). It uses
 * only the MailboxStore contract, capability flags, and `store.counters()` (engines
 * must count every entry or item they examine in `keysRead`).
 */
import { describe } from 'node:test';
import type { EngineFactory } from './helpers.js';
import { defineSendBehaviours } from './send.js';
import { defineDeviceBehaviours } from './devices.js';
import { defineExpiryQuotaBehaviours } from './expiry-quota.js';
import { defineBadInputBehaviours } from './bad-input.js';
import { defineLifecycleBehaviours } from './lifecycle.js';
import { defineFairQuotaBehaviours } from './fair-quotas.js';
import { defineGroupBehaviours } from './group.js';
import { defineBinaryBehaviours } from './binary.js';
import { defineExportBehaviours } from './export.js';
import { defineGapBehaviours } from './gaps.js';

export type { EngineFactory, EngineHandle } from './helpers.js';

/**
 * The behaviours in two halves, so that an engine whose suite is slow (DynamoDB Local:
 * a table per behaviour) can run each half in its own test file, each within the
 * per-file timeout. Every engine still runs every behaviour.
 */
export const CONFORMANCE_PARTS = {
  core: [defineSendBehaviours, defineDeviceBehaviours, defineExpiryQuotaBehaviours, defineBadInputBehaviours, defineLifecycleBehaviours],
  features: [defineFairQuotaBehaviours, defineGroupBehaviours, defineBinaryBehaviours, defineExportBehaviours, defineGapBehaviours],
} as const;
export type ConformancePart = keyof typeof CONFORMANCE_PARTS;

export function defineConformance(engineName: string, factory: EngineFactory, parts: readonly ConformancePart[] = ['core', 'features']): void {
  const title = parts.length === Object.keys(CONFORMANCE_PARTS).length ? engineName : `${engineName} (${parts.join(', ')})`;
  describe(`conformance: ${title}`, () => {
    for (const part of parts) for (const define of CONFORMANCE_PARTS[part]) define(factory);
  });
}
