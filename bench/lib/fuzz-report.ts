/** The fuzz run's record (bench/results/fuzz.json) and its page (fuzz.md). */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { LatencySummary } from './stats.js';

export interface Finding {
  via: 'ws' | 'http' | 'raw' | 'probe';
  /** Replay: sampleBatch(<generator for via>, seed, batch, 200)[index]. */
  seed: number;
  batch: number;
  index: number;
  input: string;
  answer: string;
}

export interface FuzzData {
  runs: number;
  seed: number;
  deadlineMs: number;
  inputs: { wsFrames: number; wsSessions: number; http: number; raw: number; total: number };
  answers: {
    /** Server frames by type (`error:CODE` for errors). */
    ws: Record<string, number>;
    wsClose: Record<string, number>;
    wsUpgrade: Record<string, number>;
    /** `status CODE`. */
    http: Record<string, number>;
    raw: Record<string, number>;
  };
  counts: { fiveXX: number; internal: number; untyped: number; hang: number; crash: number; probeFailures: number };
  findings: { fiveXX: Finding[]; internal: Finding[]; untyped: Finding[]; hang: Finding[]; crash: Finding[]; probe: Finding[] };
  probes: { ok: number; failed: number; maxMs: number };
  server: {
    pid: number;
    rssStartBytes: number;
    rssEndBytes: number;
    /** Log lines at level error (50) or above. */
    errorLogLines: number;
    logCounts: Record<string, number>;
    errorSamples: string[];
    exit: string | null;
  };
  durationMs: number;
  diskProbe: LatencySummary;
  /** Set when the run ended before `runs` inputs (--max-minutes). */
  stoppedEarly?: string;
  maxInvalidFrames: number;
  /** Batches the input generators failed to build (skipped; a bug of the fuzzer, not the server). */
  generatorErrors: string[];
}

const CLOSE_NAMES: Record<string, string> = {
  '1000': 'normal',
  '1001': 'going away',
  '1002': 'protocol error (ws)',
  '1005': 'no status',
  '1006': 'abnormal (no close frame)',
  '1007': 'invalid UTF-8 (ws)',
  '1009': 'frame too big',
  '1011': 'INTERNAL',
  '4000': 'replaced',
  '4001': 'unauthorized',
  '4003': 'forbidden',
  '4008': 'too many invalid frames',
  '4029': 'rate limited',
  '4408': 'timeout',
};

function table(title: string, counts: Record<string, number>, label: (k: string) => string = (k) => k): string {
  const rows = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  if (rows.length === 0) return `${title}: none\n`;
  return [`| ${title} | count |`, '| --- | ---: |', ...rows.map(([k, n]) => `| ${label(k)} | ${n.toLocaleString('en-US')} |`)].join('\n') + '\n';
}

function findings(title: string, list: Finding[], total: number): string {
  if (total === 0) return `### ${title}: 0\n`;
  const items = list.map(
    (f) =>
      `- ${f.via} seed ${f.seed} batch ${f.batch} index ${f.index}\n  - input: \`${f.input.replace(/`/g, "'").slice(0, 600)}\`\n  - answer: \`${f.answer.replace(/`/g, "'").replace(/\r?\n/g, '\\n').slice(0, 400)}\``,
  );
  return `### ${title}: ${total}\n\n${items.join('\n')}\n`;
}

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MiB`;

export function writeFuzzReport(dir: string, jsonFile: string, d: FuzzData): string {
  const secs = d.durationMs / 1000;
  const md = `# Fuzz run against a live \`pobox serve\`

\`npm run fuzz -- --runs ${d.runs}${d.seed !== 1 ? ` --seed ${d.seed}` : ''}\` (bench/fuzz.ts): ${d.inputs.total.toLocaleString('en-US')} hostile inputs against one
\`pobox serve\` process (lmdb, in-process bus) on 127.0.0.1, in ${(secs / 60).toFixed(1)} minutes (${Math.round(d.inputs.total / secs)} inputs/s). Every input had
to be answered within ${d.deadlineMs / 1000} s; every 5 s a probe sent a valid message over HTTP and over a WebSocket. The machine
(2 cores) was shared with other work during the run. Disk fdatasync probe in the same run: p50 ${d.diskProbe.p50.toFixed(2)} ms, p99 ${d.diskProbe.p99.toFixed(2)} ms.
The server ran with its defaults except \`limits.maxInvalidFrames: ${d.maxInvalidFrames}\` (default 10), so one connection carries up to
60 frames through the parser; sessions with more bad frames than that still get the 4008 close.
${d.stoppedEarly ? `\n**This run ${d.stoppedEarly}.**\n` : ''}Raw numbers: [${path.basename(jsonFile)}](${path.basename(jsonFile)}).

## Result

| | |
| --- | ---: |
| inputs tried | ${d.inputs.total.toLocaleString('en-US')} |
| WebSocket frames (in sessions) | ${d.inputs.wsFrames.toLocaleString('en-US')} (${d.inputs.wsSessions.toLocaleString('en-US')}) |
| HTTP requests | ${d.inputs.http.toLocaleString('en-US')} |
| raw requests to the HTTP parser | ${d.inputs.raw.toLocaleString('en-US')} |
| **5xx answers** (a typed 501/505 refusal of an unknown method or HTTP version is not counted; see the tables) | **${d.counts.fiveXX}** |
| **INTERNAL errors (HTTP code, WebSocket error frame or close 1011)** | **${d.counts.internal}** |
| **crashes** | **${d.counts.crash}** |
| **hangs (no answer within ${d.deadlineMs / 1000} s)** | **${d.counts.hang}** |
| untyped answers (no JSON error body, or its code does not match the status) | ${d.counts.untyped.toLocaleString('en-US')} |
| liveness probes ok / failed (slowest) | ${d.probes.ok} / ${d.probes.failed} (${d.probes.maxMs} ms) |
| server log lines at level error | ${d.server.errorLogLines} |
| server RSS at start / end | ${mib(d.server.rssStartBytes)} / ${mib(d.server.rssEndBytes)} |
| server stop | ${d.server.exit ?? 'unknown'} |
| input batches the generators failed to build (skipped) | ${d.generatorErrors.length} |

## Answers by code

${table('HTTP answer', d.answers.http)}
${table('raw request answer', d.answers.raw)}
${table('WebSocket server frame', d.answers.ws)}
${table('WebSocket close code', d.answers.wsClose, (k) => `${k} ${CLOSE_NAMES[k] ?? ''}`)}
${table('WebSocket upgrade answered without switching', d.answers.wsUpgrade)}
## Findings

Each input can be replayed: \`sampleBatch(<wsSession | httpInput | rawHttpRequest>, seed, batch, 200)[index]\` from bench/lib/fuzz-inputs.ts.

${findings('5xx', d.findings.fiveXX, d.counts.fiveXX)}
${findings('INTERNAL', d.findings.internal, d.counts.internal)}
${findings('crashes', d.findings.crash, d.counts.crash)}
${findings('hangs', d.findings.hang, d.counts.hang)}
${findings('failed probes', d.findings.probe, d.counts.probeFailures)}
${findings('untyped answers (first examples)', d.findings.untyped, d.counts.untyped)}
## Server log lines by level and message

${table('level message', d.server.logCounts)}
${d.server.errorSamples.length ? `Error lines (first ${d.server.errorSamples.length}):\n\n\`\`\`\n${d.server.errorSamples.join('\n')}\n\`\`\`\n` : ''}`;
  const file = path.join(dir, 'fuzz.md');
  writeFileSync(file, md);
  return file;
}
