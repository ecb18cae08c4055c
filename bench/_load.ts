import { mkdtempSync, rmSync } from 'node:fs';
import { openLmdbStore } from '../src/store/lmdb/index.js';
import { rng, shuffle } from './lib/stats.js';
const mode = process.argv[2]!; // "seq5000" | "par1000x4"
const dir = mkdtempSync('/tmp/pbload-');
const store = await openLmdbStore({ path: dir });
const N = 600_000, users = N / 10;
const order = new Uint32Array(N); for (let i = 0; i < N; i++) order[i] = Math.floor(i / 10);
shuffle(order, rng(1)); const nextK = new Uint8Array(users);
const mk = (i: number) => { const u = order[i]!; const k = nextK[u]!++; const user = `user-${u}`; return { id: `m-${u}-${k}`, from: 's', to: user, body: 'x'.repeat(100), bytes: 100, sentAt: 1e12 + i, expiresAt: 2e12 }; };
const limits = { maxMailboxMessages: 10000, maxMailboxBytes: 1e9 };
const batch = mode === 'seq5000' ? 5000 : 1000, inflight = mode === 'seq5000' ? 1 : 4;
let off = 0; const t0 = performance.now(); let tHalf = 0;
const worker = async () => { while (off < N) { const s = off; off += batch; const items = []; for (let i = s; i < Math.min(s + batch, N); i++) items.push(mk(i)); await store.append(items, limits); if (!tHalf && off >= N / 2) tHalf = performance.now(); } };
await Promise.all(Array.from({ length: inflight }, worker));
const t1 = performance.now();
console.log(mode, 'total', Math.round(N / ((t1 - t0) / 1000)), '/s; second half', Math.round((N / 2) / ((t1 - tHalf) / 1000)), '/s');
await store.close(); rmSync(dir, { recursive: true });
