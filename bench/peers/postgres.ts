/**
 * PostgreSQL as people use it for a mailbox: a table keyed (user_id, seq) and a counter
 * row per user, with synchronous_commit on (the commit waits for the WAL fsync). Runs in
 * a database of its own on the machine's server, dropped afterwards (also on Ctrl-C).
 */
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { onCleanup } from '../lib/cleanup.js';
import type { Peer, PeerMessage } from './peer.js';

const BASE = { host: '127.0.0.1', port: 5432, user: 'postgres' };

export async function openPostgresPeer(concurrency: number): Promise<Peer> {
  const dbName = `pobox_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ ...BASE, database: 'postgres' });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  await admin.end();
  let pool: pg.Pool | undefined = undefined;
  const drop = onCleanup(`postgres database ${dbName}`, async () => {
    await pool?.end().catch(() => undefined);
    const c = new pg.Client({ ...BASE, database: 'postgres' });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await c.end();
  });

  pool = new pg.Pool({ ...BASE, database: dbName, max: concurrency });
  // An idle client dropped by the server (e.g. DROP DATABASE ... FORCE) must not crash the run.
  pool.on('error', () => undefined);
  await pool.query(`
    CREATE TABLE mailboxes (user_id text PRIMARY KEY, last_seq bigint NOT NULL);
    CREATE TABLE messages (user_id text NOT NULL, seq bigint NOT NULL, id text NOT NULL, body text NOT NULL,
                           sent_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (user_id, seq));`);
  const settings = await pool.query<{ name: string; setting: string }>(
    `SELECT name, setting FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync', 'wal_sync_method', 'server_version')`,
  );
  const s = Object.fromEntries(settings.rows.map((r) => [r.name, r.setting]));
  if (s.synchronous_commit !== 'on' || s.fsync !== 'on') throw new Error(`PostgreSQL is not durable here: ${JSON.stringify(s)}`);
  // Warm the pool so connection set-up is not timed as a send.
  await Promise.all(Array.from({ length: concurrency }, () => pool!.query('SELECT 1')));

  return {
    name: 'PostgreSQL (sync commit)',
    version: `postgresql ${s.server_version}`,
    durability: `synchronous_commit=${s.synchronous_commit}, fsync=${s.fsync}, wal_sync_method=${s.wal_sync_method}: the commit returns after the WAL is flushed (concurrent commits share flushes)`,
    notes: [`A pool of ${concurrency} connections (one per client). No dedupe by message id.`],
    async setup() {},
    async send(user, id, body) {
      // One statement, one implicit transaction: bump the user's counter and insert.
      const r = await pool!.query<{ seq: string }>({
        name: 'send',
        text: `WITH s AS (INSERT INTO mailboxes (user_id, last_seq) VALUES ($1, 1)
                          ON CONFLICT (user_id) DO UPDATE SET last_seq = mailboxes.last_seq + 1 RETURNING last_seq)
               INSERT INTO messages (user_id, seq, id, body) SELECT $1, last_seq, $2, $3 FROM s RETURNING seq`,
        values: [user, id, body],
      });
      return Number(r.rows[0]!.seq);
    },
    async fetch(user, afterSeq, limit): Promise<PeerMessage[]> {
      const r = await pool!.query<{ seq: string; id: string }>({
        name: 'fetch',
        text: 'SELECT seq, id, body FROM messages WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3',
        values: [user, afterSeq, limit],
      });
      return r.rows.map((row) => ({ seq: Number(row.seq), id: row.id }));
    },
    async deleteUpTo(user, upToSeq) {
      await pool!.query({ name: 'delete', text: 'DELETE FROM messages WHERE user_id = $1 AND seq <= $2', values: [user, upToSeq] });
    },
    async close() {
      await drop();
    },
  };
}
