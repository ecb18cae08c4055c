/** pobox itself: the post office over the lmdb engine, in-process (one device per user). */
import { openLmdbStore } from '../../src/store/lmdb/index.js';
import { PostOffice } from '../../src/postoffice/post-office.js';
import { tempDir, type TempDir } from '../lib/temp.js';
import { packageVersion } from '../lib/versions.js';
import type { Peer, PeerMessage } from './peer.js';

const DEVICE = 'phone';

export async function openPoboxPeer(): Promise<Peer> {
  const dir: TempDir = tempDir('peers-pobox');
  const po = new PostOffice({ store: await openLmdbStore({ path: dir.path }), sweeper: false });
  return {
    name: 'pobox (lmdb)',
    version: `pobox 0.1.0, lmdb-js ${packageVersion('lmdb')}`,
    durability: "acknowledged after the LMDB commit is fsync'd (concurrent sends share one commit)",
    notes: ['Also does per-recipient dedupe by message id, quotas and an expiry index on every send.'],
    async setup(users) {
      for (let i = 0; i < users.length; i += 500) {
        await Promise.all(users.slice(i, i + 500).map((u) => po.registerDevice(u, DEVICE, 'oldest')));
      }
    },
    async send(user, id, body) {
      return (await po.send({ from: 'sender', to: user, id, body })).seq;
    },
    async fetch(user, afterSeq, limit): Promise<PeerMessage[]> {
      const page = await po.read(user, DEVICE, afterSeq, limit);
      return page.messages.map((m) => ({ seq: m.seq, id: m.id }));
    },
    async deleteUpTo(user, upToSeq) {
      await po.ack(user, DEVICE, upToSeq);
    },
    async close() {
      await po.close();
      await dir.remove();
    },
  };
}
