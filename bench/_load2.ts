import { mkdtempSync, rmSync } from 'node:fs';
import { openLmdbStore } from '../src/store/lmdb/index.js';
const dir = mkdtempSync('/tmp/pbload-');
const store = await openLmdbStore({ path: dir });
const limits = { maxMailboxMessages: 10000, maxMailboxBytes: 1e9 };
const mk = (u: number, k: number, i: number) => ({ id: `m-${u}-${k}`, from: 's', to: `user-${u}`, body: 'x'.repeat(100), bytes: 100, sentAt: 1e12 + i, expiresAt: 2e12 + i });
// stage 1: 100k users x 10, user order (fast setup)
let i = 0;
for (let u0 = 0; u0 < 100_000; u0 += 500) { const items = []; for (let u = u0; u < u0 + 500; u++) for (let k = 0; k < 10; k++) items.push(mk(u, k, i++)); await store.append(items, limits); }
const t0 = performance.now();
// stage 2: users 100k..190k in numeric (= key-sweep) order
for (let u0 = 100_000; u0 < 190_000; u0 += 500) { const items = []; for (let u = u0; u < u0 + 500; u++) for (let k = 0; k < 10; k++) items.push(mk(u, k, i++)); await store.append(items, limits); }
console.log('ordered stage: ', Math.round(900_000 / ((performance.now() - t0) / 1000)), 'msg/s');
await store.close(); rmSync(dir, { recursive: true });
