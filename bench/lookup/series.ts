/**
 * The series of the lookup-vs-scan benchmark. Each holds the same messages and answers
 * the same question: "every pending message of this user".
 */
import type { MailboxStore } from '../../src/store/contract.js';
import { PostOffice } from '../../src/postoffice/post-office.js';
import { SharedLog } from './shared-log.js';

export interface Msg {
  user: string;
  id: string;
  body: string;
  sentAt: number;
}

export interface Series {
  readonly name: string;
  /** Store a batch durably. */
  load(batch: readonly Msg[]): Promise<void>;
  /** Get ready to fetch for these users (pobox registers their device). */
  prepare(users: readonly string[]): Promise<void>;
  /** Every pending message of `user`; returns their ids. */
  fetch(user: string): Promise<string[]>;
  close(): Promise<void>;
}

const DEVICE = 'phone';
const TTL_MS = 30 * 24 * 3600 * 1000;

/** pobox over any engine: loads through the store's batch append (what the post office's group commit calls), reads through PostOffice.read. */
export class PoboxSeries implements Series {
  private readonly po: PostOffice;
  private readonly prepared = new Set<string>();

  constructor(
    readonly name: string,
    private readonly store: MailboxStore,
    private readonly pageSize = 100,
  ) {
    this.po = new PostOffice({ store, sweeper: false, config: { limits: { maxPageSize: 1000 } } });
  }

  async load(batch: readonly Msg[]): Promise<void> {
    const outcomes = await this.store.append(
      batch.map((m) => ({ id: m.id, from: 'sender', to: m.user, body: m.body, bytes: Buffer.byteLength(m.body), sentAt: m.sentAt, expiresAt: m.sentAt + TTL_MS })),
      { maxMailboxMessages: 10_000, maxMailboxBytes: 64 * 1024 * 1024 },
    );
    const bad = outcomes.find((o) => !o.ok);
    if (bad && !bad.ok) throw bad.error;
  }

  async prepare(users: readonly string[]): Promise<void> {
    const todo = users.filter((u) => !this.prepared.has(u));
    // Concurrent registrations share write transactions (lmdb) or run in parallel (DynamoDB).
    for (let i = 0; i < todo.length; i += 200) {
      await Promise.all(todo.slice(i, i + 200).map((u) => this.po.registerDevice(u, DEVICE, 'oldest')));
    }
    for (const u of todo) this.prepared.add(u);
  }

  async fetch(user: string): Promise<string[]> {
    const ids: string[] = [];
    let after = 0;
    for (;;) {
      const page = await this.po.read(user, DEVICE, after, this.pageSize);
      for (const m of page.messages) ids.push(m.id);
      if (!page.more) return ids;
      after = page.nextAfter;
    }
  }

  close(): Promise<void> {
    return this.po.close();
  }
}

export class SharedLogSeries implements Series {
  readonly name: string;
  private readonly log: SharedLog;
  bytesScanned = 0;
  recordsScanned = 0;

  constructor(dir: string, partitions: number) {
    this.name = `shared log (${partitions} partitions, scan)`;
    this.log = new SharedLog(dir, partitions);
  }

  async load(batch: readonly Msg[]): Promise<void> {
    this.log.append(batch);
  }

  async prepare(): Promise<void> {}

  async fetch(user: string): Promise<string[]> {
    const r = await this.log.fetch(user);
    this.bytesScanned = r.bytesScanned;
    this.recordsScanned = r.recordsScanned;
    return r.records.map((x) => x.id);
  }

  partitionBytes(): number[] {
    return this.log.partitionBytes();
  }

  close(): Promise<void> {
    return this.log.close();
  }
}
