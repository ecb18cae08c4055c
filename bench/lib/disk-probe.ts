/**
 * How long this machine's disk takes to make a small write durable (append 4 KiB +
 * fdatasync, the cost every durable store pays at least once per commit). Printed next
 * to durable-write numbers, because it bounds them: with C clients waiting, a store
 * that group-commits can do at most about C / fsync-time sends per second.
 */
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { Latency, type LatencySummary } from './stats.js';
import { tempDir } from './temp.js';

export async function fdatasyncLatency(samples = 200): Promise<LatencySummary> {
  const dir = tempDir('fsync-probe');
  const fd = openSync(path.join(dir.path, 'probe'), 'a');
  const block = Buffer.alloc(4096, 1);
  const lat = new Latency();
  try {
    for (let i = 0; i < samples; i++) {
      const t0 = process.hrtime.bigint();
      writeSync(fd, block);
      fdatasyncSync(fd);
      lat.recordNs(process.hrtime.bigint() - t0);
    }
  } finally {
    closeSync(fd);
    await dir.remove();
  }
  return lat.summary();
}
