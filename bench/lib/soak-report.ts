/**
 * The soak's samples, their trend, and its results page (bench/results/soak.md + json +
 * SVG plots). The trend is a least-squares line through the samples after warm-up; a
 * slope is "within noise" when what it predicts over the whole window is smaller than
 * twice the scatter of the samples around the line.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { writeLineChart, type SeriesPoint } from './plot.js';
import type { LatencySummary } from './stats.js';

export interface SoakSample {
  /** Seconds since the load started. */
  t: number;
  rssBytes: number;
  /** Anonymous resident pages (JS heap, native allocations, socket buffers). */
  rssAnonBytes: number;
  /** File-backed resident pages: the mapped LMDB data file and the code; the kernel can drop them under pressure. */
  rssFileBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
  /** Event-loop delay of the last interval (prom-client's monitor, reset at each scrape). */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  activeHandles: number;
  openFds: number;
  connections: number;
  /** pobox_pending_messages: stored, not yet deleted. */
  pendingMessages: number;
  /** Client side: sends written and not yet accepted. */
  unansweredSends: number;
  accepted: number;
  delivered: number;
}

export interface Trend {
  /** Units per hour. */
  slopePerHour: number;
  /** Slope x window: what the line predicts over the window after warm-up. */
  changeOverWindow: number;
  /** Standard deviation of the samples around the line. */
  residualStd: number;
  r2: number;
  withinNoise: boolean;
  samples: number;
}

export function trend(points: Array<{ t: number; y: number }>): Trend {
  const n = points.length;
  if (n < 3) return { slopePerHour: 0, changeOverWindow: 0, residualStd: 0, r2: 0, withinNoise: true, samples: n };
  const mt = points.reduce((s, p) => s + p.t, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let stt = 0;
  let sty = 0;
  let syy = 0;
  for (const p of points) {
    stt += (p.t - mt) ** 2;
    sty += (p.t - mt) * (p.y - my);
    syy += (p.y - my) ** 2;
  }
  const slope = sty / stt;
  const ssr = points.reduce((s, p) => s + (p.y - (my + slope * (p.t - mt))) ** 2, 0);
  const residualStd = Math.sqrt(ssr / (n - 2));
  const window = points[n - 1]!.t - points[0]!.t;
  const change = slope * window;
  return { slopePerHour: slope * 3600, changeOverWindow: change, residualStd, r2: syy === 0 ? 0 : 1 - ssr / syy, withinNoise: Math.abs(change) <= 2 * residualStd, samples: n };
}

export interface SoakData {
  minutes: number;
  warmupSeconds: number;
  params: Record<string, unknown>;
  samples: SoakSample[];
  rss: Trend;
  /** RSS split by /proc/<pid>/status: anonymous pages and file-backed pages (the LMDB map). */
  rssAnon: Trend;
  rssFile: Trend;
  heap: Trend;
  totals: {
    sent: number;
    accepted: number;
    duplicateAccepts: number;
    httpSends: number;
    deliveredToStableDevices: number;
    connections: number;
    reconnects: number;
    slowReaderPauses: number;
    churnedDevices: number;
    httpPulls: number;
  };
  lost: number;
  lostExamples: string[];
  duplicatedWithinConnection: number;
  unansweredAtEnd: number;
  pendingAtEnd: number;
  drainSeconds: number;
  clientErrors: Record<string, number>;
  serverErrorLogLines: number;
  serverLogCounts: Record<string, number>;
  serverExit: string;
  diskProbe: LatencySummary;
}

const MiB = 2 ** 20;
const fmt = (n: number, d = 1): string => n.toFixed(d);

function trendLine(name: string, t: Trend): string {
  return `| ${name} | ${fmt(t.slopePerHour / MiB, 2)} MiB/h | ${fmt(t.changeOverWindow / MiB, 2)} MiB | ${fmt(t.residualStd / MiB, 2)} MiB | ${fmt(t.r2, 2)} | ${t.withinNoise ? 'yes' : '**no**'} |`;
}

/** Which part of RSS moved, in words, from the split trends. */
function rssVerdict(d: SoakData): string {
  const part = (name: string, t: Trend): string =>
    `${name} ${t.withinNoise ? 'is flat within noise' : `moved ${fmt(t.changeOverWindow / MiB, 2)} MiB over the window (scatter ${fmt(t.residualStd / MiB, 2)} MiB)`}`;
  return `After warm-up, ${part('the anonymous part', d.rssAnon)}; ${part('the file-backed part', d.rssFile)}.`;
}

export async function writeSoakReport(dir: string, jsonFile: string, d: SoakData, quick: boolean): Promise<string> {
  const memFile = path.join(dir, 'soak-memory.svg');
  const loopFile = path.join(dir, 'soak-loop.svg');
  const mem: SeriesPoint[] = d.samples.flatMap((s) => [
    { series: 'RSS (MiB)', x: s.t / 60, y: s.rssBytes / MiB },
    { series: 'RSS anonymous (MiB)', x: s.t / 60, y: s.rssAnonBytes / MiB },
    { series: 'RSS file-backed (MiB)', x: s.t / 60, y: s.rssFileBytes / MiB },
    { series: 'heap used (MiB)', x: s.t / 60, y: s.heapUsedBytes / MiB },
    { series: 'external (MiB)', x: s.t / 60, y: s.externalBytes / MiB },
  ]);
  await writeLineChart(memFile, mem, { title: `pobox serve memory during a ${d.minutes}-minute soak`, xTitle: 'minutes', yTitle: 'MiB' });
  const loop: SeriesPoint[] = d.samples.flatMap((s) => [
    { series: 'event-loop delay p99 (ms)', x: s.t / 60, y: s.loopDelayP99Ms },
    { series: 'active handles', x: s.t / 60, y: s.activeHandles },
    { series: 'open fds', x: s.t / 60, y: s.openFds },
    { series: 'pending messages (server)', x: s.t / 60, y: s.pendingMessages },
    { series: 'unanswered sends (clients)', x: s.t / 60, y: s.unansweredSends },
  ]);
  await writeLineChart(loopFile, loop, { title: 'event-loop delay, handles and pending counts', xTitle: 'minutes', yTitle: 'ms / count' });

  const last = d.samples[d.samples.length - 1];
  const maxOf = (f: (s: SoakSample) => number): number => Math.max(...d.samples.map(f));
  const md = `# Soak: steady mixed load through the gateway

\`npm run soak -- --minutes ${d.minutes}\` (bench/soak.ts): one \`pobox serve\` process (lmdb, in-process bus) on 127.0.0.1
under a steady mixed load for ${d.minutes} minutes, sampled every 10 s${quick ? ' (a --quick validation run)' : ''}. The machine (2 cores) was shared with
other work during the run, so event-loop delays include waiting for a CPU. Disk fdatasync probe in the same run:
p50 ${fmt(d.diskProbe.p50, 2)} ms, p99 ${fmt(d.diskProbe.p99, 2)} ms. Raw samples: [${path.basename(jsonFile)}](${path.basename(jsonFile)}).

Load: ${String(d.params['users'])} users with ${String(d.params['devicesPerUser'])} WebSocket devices each, ~${String(d.params['sendsPerSecond'])} sends/s over WebSocket to random
other users plus one HTTP send/s from a backend key; each message is delivered to both devices of its recipient and
acked; every ${String(d.params['reconnectEverySeconds'])} s one device reconnects (its next connection drains what it had not acked); every
${String(d.params['slowEverySeconds'])} s one device stops reading its socket for 5-15 s (a slow reader: the server's window and send buffer fill);
every ${String(d.params['churnEverySeconds'])} s a short-lived device of a random user is registered over HTTP, pulls and acks over HTTP, and is removed
(device churn).

## Result

| | |
| --- | ---: |
| duration of load | ${d.minutes} min, ${d.samples.length} samples |
| messages accepted (WebSocket + HTTP) | ${d.totals.accepted.toLocaleString('en-US')} (${d.totals.httpSends.toLocaleString('en-US')} over HTTP) |
| deliveries to the stable devices | ${d.totals.deliveredToStableDevices.toLocaleString('en-US')} |
| WebSocket connections (reconnects) | ${d.totals.connections.toLocaleString('en-US')} (${d.totals.reconnects}) |
| slow-reader pauses / churned devices / HTTP pulls | ${d.totals.slowReaderPauses} / ${d.totals.churnedDevices} / ${d.totals.httpPulls} |
| **lost** (accepted, never delivered to a device of the recipient) | **${d.lost}** |
| **duplicated within a connection** | **${d.duplicatedWithinConnection}** |
| sends unanswered at the end / pending messages on the server at the end | ${d.unansweredAtEnd} / ${d.pendingAtEnd} |
| final drain (load stopped until everything acked) | ${fmt(d.drainSeconds)} s |
| server log lines at level error / stop | ${d.serverErrorLogLines} / ${d.serverExit} |
| client-side errors and unexpected closes | ${
    Object.keys(d.clientErrors).length
      ? Object.entries(d.clientErrors)
          .map(([k, v]) => `${k}: ${v}`)
          .join(', ')
      : 'none'
  } |

## Memory trend after warm-up (first ${d.warmupSeconds} s left out)

Least-squares line through the samples after warm-up. "Within noise": the change the line predicts over the window is
smaller than twice the scatter of the samples around it.

| series | slope | change over the window | scatter (std) | R² | within noise |
| --- | ---: | ---: | ---: | ---: | --- |
${trendLine('RSS', d.rss)}
${trendLine('RSS anonymous', d.rssAnon)}
${trendLine('RSS file-backed', d.rssFile)}
${trendLine('heap used', d.heap)}

RSS is the sum of anonymous pages (the JS heap, native allocations, socket buffers: memory the process holds) and
file-backed pages (the LMDB data file mapped into the process, which grows as the file's touched pages grow and which the
kernel reclaims under memory pressure without the process's help). ${rssVerdict(d)}

At the end: RSS ${fmt((last?.rssBytes ?? 0) / MiB)} MiB, heap used ${fmt((last?.heapUsedBytes ?? 0) / MiB)} MiB, ${last?.activeHandles ?? 0} active handles,
${last?.openFds ?? 0} open fds. Highest event-loop delay p99 in any 10 s interval: ${fmt(maxOf((s) => s.loopDelayP99Ms))} ms (max ${fmt(maxOf((s) => s.loopDelayMaxMs))} ms).

![memory](${path.basename(memFile)})

![event loop, handles, pending](${path.basename(loopFile)})

## Samples

| min | RSS MiB | anon MiB | file MiB | heap MiB | loop p99 ms | handles | fds | connections | pending | unanswered | accepted |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${d.samples
  .filter((_, i) => d.samples.length <= 40 || i % Math.ceil(d.samples.length / 40) === 0 || i === d.samples.length - 1)
  .map(
    (s) =>
      `| ${fmt(s.t / 60)} | ${fmt(s.rssBytes / MiB)} | ${fmt(s.rssAnonBytes / MiB)} | ${fmt(s.rssFileBytes / MiB)} | ${fmt(s.heapUsedBytes / MiB)} | ${fmt(s.loopDelayP99Ms)} | ${s.activeHandles} | ${s.openFds} | ${s.connections} | ${s.pendingMessages} | ${s.unansweredSends} | ${s.accepted} |`,
  )
  .join('\n')}
${d.lostExamples.length ? `\nLost (first examples): ${d.lostExamples.join(', ')}\n` : ''}`;
  const file = path.join(dir, 'soak.md');
  writeFileSync(file, md);
  return file;
}
