/**
 * The mailbox workload every peer implements, in the most natural way for that peer:
 *
 *  - send: store one message for a user, durably, and learn its sequence number;
 *  - fetch: a page of the user's pending messages after a sequence number;
 *  - delete: drop the user's messages up to and including a sequence number (the ack).
 */
export interface PeerMessage {
  seq: number;
  id: string;
}

export interface Peer {
  readonly name: string;
  /** Server version, for the machine record. */
  readonly version: string;
  /** What "acknowledged" means for a send, in plain words. */
  readonly durability: string;
  /** Extra facts worth stating next to the numbers (e.g. what the peer does not do). */
  readonly notes: string[];
  setup(users: readonly string[]): Promise<void>;
  send(user: string, id: string, body: string): Promise<number>;
  fetch(user: string, afterSeq: number, limit: number): Promise<PeerMessage[]>;
  deleteUpTo(user: string, upToSeq: number): Promise<void>;
  close(): Promise<void>;
}
