/**
 * Shared pieces of the conformance suite: the engine factory interface, a fake clock,
 * and small assertion helpers. Nothing here knows which engine it runs on.
 */
import assert from 'node:assert/strict';
import { PoboxError, type ErrorCode } from '../../src/core/errors.js';
import type { StoredMessage } from '../../src/core/types.js';
import type { PostOfficeConfigInput } from '../../src/core/config.js';
import type { MailboxStore } from '../../src/store/contract.js';
import { PostOffice } from '../../src/postoffice/post-office.js';
import { FakeClock } from '../../tools/fake-clock.js';

/** What an engine gives the suite for one test: a fresh, empty namespace. */
export interface EngineHandle {
  /** An open store over an empty namespace (fresh temp dir, fresh table or key prefix). */
  store: MailboxStore;
  /**
   * Open the same data again. The suite has already closed the previous store (through
   * its post office) when it calls this. Every engine must support it.
   */
  reopen: () => Promise<MailboxStore>;
  /** Remove the namespace. Called once, after the suite closed whatever store is open. */
  cleanup: () => Promise<void>;
}

export type EngineFactory = () => Promise<EngineHandle>;

export interface Env {
  po: PostOffice;
  clock: FakeClock;
  store: MailboxStore;
  /** Close the post office (and store), open the same data again with the same config. */
  reopen: () => Promise<PostOffice>;
}

/**
 * Run `fn` against a fresh namespace and always tear it down, even when `fn` fails.
 * The background sweeper is off: tests call sweepNow() themselves.
 */
export async function withEnv(factory: EngineFactory, givenConfig: PostOfficeConfigInput, fn: (env: Env) => Promise<void>): Promise<void> {
  // The suite checks what an engine stores, not how fast: some behaviours append thousands
  // of messages in one batch, which DynamoDB Local on a busy 2-core machine can take longer
  // than the production deadline (10 s) to store. Store deadlines have their own tests
  // (test/hardening/store-deadline.test.ts, frozen-store.test.ts).
  const config: PostOfficeConfigInput = { storeTimeoutMs: 300_000, ...givenConfig };
  const handle = await factory();
  const clock = new FakeClock();
  const env: Env = {
    po: new PostOffice({ store: handle.store, config, clock, sweeper: false }),
    clock,
    store: handle.store,
    reopen: async () => {
      await env.po.close();
      env.store = await handle.reopen();
      env.po = new PostOffice({ store: env.store, config, clock, sweeper: false });
      return env.po;
    },
  };
  try {
    await fn(env);
  } finally {
    await env.po.close().catch(() => undefined);
    await handle.cleanup();
  }
}

/** Assert that `p` rejects with a PoboxError of this code (and field, when given). */
export async function rejectsWith(p: Promise<unknown> | (() => Promise<unknown>), code: ErrorCode, field?: string): Promise<PoboxError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  assert.ok(err !== undefined, `expected a ${code} error, but the call succeeded`);
  assert.ok(err instanceof PoboxError, `expected a PoboxError, got ${String(err)}`);
  assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
  if (field !== undefined) assert.equal(err.field, field, `expected field ${field}, got ${String(err.field)}`);
  return err;
}

/** Everything `device` would be shown from `afterSeq` on, page by page. */
export async function readAll(po: PostOffice, user: string, device: string, afterSeq = 0, limit = 500): Promise<StoredMessage[]> {
  const out: StoredMessage[] = [];
  let after = afterSeq;
  for (let guard = 0; guard < 100_000; guard++) {
    const page = await po.read(user, device, after, limit);
    out.push(...page.messages);
    assert.ok(page.nextAfter >= after, 'nextAfter must never move backwards');
    if (!page.more) return out;
    assert.ok(page.nextAfter > after, 'a page with more=true must make progress');
    after = page.nextAfter;
  }
  throw new Error('readAll did not finish');
}

export const seqsOf = (msgs: readonly StoredMessage[]): number[] => msgs.map((m) => m.seq);
export const idsOf = (msgs: readonly StoredMessage[]): string[] => msgs.map((m) => m.id);

/** Send `n` messages one after the other; returns their seqs. */
export async function sendMany(po: PostOffice, to: string, n: number, prefix = 'm', extra: { toDevice?: string; ttlSeconds?: number } = {}): Promise<number[]> {
  const seqs: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = await po.send({ to, from: 'sender', id: `${prefix}${i}`, body: `${prefix} body ${i}`, ...extra });
    seqs.push(r.seq);
  }
  return seqs;
}
