/**
 * NATS JetStream with a subject per user, on the machine's nats-server: one file-storage
 * stream `<name>` with subjects `<prefix>.<user>`. Send is a JetStream publish (the
 * PubAck carries the stream sequence; the message id goes in Nats-Msg-Id for dedupe).
 * A fetch is what a reconnecting device does: an ordered consumer filtered to its
 * subject, reading up to a page. Delete up to a seq is a purge of the subject below it.
 *
 * Durability: see `natsFsyncProbe` — the server acknowledges after writing to its files
 * and fsyncs on a timer, not per publish (measured, and stated in the results).
 */
import { connect, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager, type NatsConnection } from 'nats';
import { randomBytes } from 'node:crypto';
import { onCleanup } from '../lib/cleanup.js';
import type { Peer, PeerMessage } from './peer.js';

export const NATS_URL = '127.0.0.1:4222';

export async function openNatsPeer(fsyncNote: string): Promise<Peer> {
  const tag = randomBytes(4).toString('hex');
  const stream = `POBOX_BENCH_${tag}`;
  const prefix = `pobox-bench.${tag}`;
  const nc: NatsConnection = await connect({ servers: NATS_URL, name: 'pobox-bench' });
  const jsm: JetStreamManager = await nc.jetstreamManager();
  const js: JetStreamClient = nc.jetstream();
  const deletes = new Set<Promise<void>>();
  const remove = onCleanup(`nats stream ${stream}`, async () => {
    await jsm.streams.delete(stream).catch(() => undefined);
    await nc.drain().catch(() => undefined);
  });
  await jsm.streams.add({
    name: stream,
    subjects: [`${prefix}.>`],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    num_replicas: 1,
  });
  return {
    name: 'NATS JetStream (subject per user)',
    version: `nats-server ${nc.info?.version ?? 'unknown'}`,
    durability: fsyncNote,
    notes: [
      "One connection. Each fetch creates an ordered (ephemeral) consumer filtered to the user's subject, as a reconnecting device would; sequence numbers are stream-wide.",
      "Dedupe by Nats-Msg-Id within the stream's duplicate window (2 minutes by default).",
    ],
    async setup() {},
    async send(user, id, body) {
      const ack = await js.publish(`${prefix}.${user}`, body, { msgID: id });
      return ack.seq;
    },
    async fetch(user, afterSeq, limit): Promise<PeerMessage[]> {
      const c = await js.consumers.get(stream, { filterSubjects: `${prefix}.${user}`, opt_start_seq: afterSeq + 1 });
      const out: PeerMessage[] = [];
      const iter = await c.fetch({ max_messages: limit, expires: 5000 });
      for await (const m of iter) {
        out.push({ seq: m.seq, id: m.headers?.get('Nats-Msg-Id') ?? '' });
        // The consumer says how many are left; stop at the end instead of waiting for expiry.
        if (m.info.pending === 0 || out.length >= limit) break;
      }
      iter.stop();
      // Dropping the consumer is the client's housekeeping, not part of getting the page.
      const del = c.delete().then(
        () => undefined,
        () => undefined,
      );
      deletes.add(del);
      // `del` never rejects (both outcomes map to undefined above).
      del.then(
        () => deletes.delete(del),
        () => undefined,
      );
      return out;
    },
    async deleteUpTo(user, upToSeq) {
      await jsm.streams.purge(stream, { filter: `${prefix}.${user}`, seq: upToSeq + 1 });
    },
    async close() {
      await Promise.all([...deletes]);
      await remove();
    },
  };
}
