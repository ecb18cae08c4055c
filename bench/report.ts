/**
 * Writes the results README from the JSON files in a results directory: the lookup plot
 * and table, the peer table with ratios to pobox, the end-to-end numbers, the other
 * benchmarks' own summaries, and what limited each number. Run by `npm run bench`;
 * alone, `npm run bench:report [-- --quick]` rebuilds it from the JSON already there.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { E2eData } from './e2e.js';
import { benchArgs } from './lib/args.js';
import { BENCH_DIR, readResult, resultsDir, type BenchMachine, type ResultEnvelope } from './lib/results.js';
import { round } from './lib/stats.js';
import type { LookupData } from './lookup-vs-scan.js';
import type { PeersData } from './peers.js';
import { VS_REDIS_TARGETS } from './peers/targets.js';

export interface RunStep {
  script: string;
  title: string;
  status: string;
  seconds: number;
}

export async function writeReport(dir: string, quick: boolean): Promise<string> {
  const lookup = readResult<LookupData>(dir, 'lookup-vs-scan');
  const peers = readResult<PeersData>(dir, 'peers');
  const e2e = readResult<E2eData>(dir, 'e2e');
  const run = readRun(dir);
  const any = lookup ?? peers ?? e2e;
  const out: string[] = [];
  out.push(`# pobox benchmark results${quick ? ' (quick run: small sizes, not the measured numbers)' : ''}`, '');
  out.push(
    'Produced by `npm run bench` (bench/run-all.ts); every benchmark is a script in `bench/` and writes its JSON here,',
    "with the machine it ran on. Each section comes from its benchmark's last run on this machine (when each ran is",
    'listed below); within a section every figure, and every peer it is compared with, comes from that one run.',
    '',
  );
  out.push(...summary(lookup, peers, e2e));
  if (any) out.push('## Machine', '', ...machineLines(any.machine, [lookup, peers, e2e]), '');
  const ran = [
    ['lookup vs scan', lookup],
    ['peers', peers],
    ['end to end', e2e],
  ] as const;
  const dated = ran.filter(([, r]) => r).map(([name, r]) => `${name} ${r?.startedAt ?? ''}`);
  if (dated.length) out.push(`Runs quoted in the summary: ${dated.join('; ')}.`, '');
  if (run) {
    out.push(
      `The last full \`npm run bench\` started ${run.startedAt} and took ${Math.round(run.seconds / 60)} min; benchmarks run on their own since then replaced their own sections.`,
      '',
      '| benchmark | status | seconds |',
      '| --- | --- | --- |',
    );
    for (const s of run.steps) out.push(`| \`${s.script}\` (${s.title}) | ${s.status} | ${s.seconds} |`);
    out.push('');
  }
  out.push(...lookupSection(lookup), ...peersSection(peers), ...e2eSection(e2e));
  out.push(...embedded(dir, quick, 'store', 'Store engines (`npm run bench:store`)'));
  out.push(...embedded(dir, quick, 'dynamodb-cost', 'DynamoDB capacity per message (`npm run bench:dynamodb-cost`)'));
  out.push(...embedded(dir, quick, 'gateway', 'Gateway (`npm run bench:gateway`)'));
  if (existsSync(path.join(dir, 'many-node.md'))) out.push(...embedded(dir, quick, 'many-node', 'Many nodes over DynamoDB Local and Redis Cluster (`npm run bench:many-node`)'));
  out.push(...capacitySection(dir));
  const file = path.join(dir, 'README.md');
  writeFileSync(
    file,
    `${out
      .join('\n')
      .replace(/\n{3,}/g, '\n\n')
      .trim()}\n`,
  );
  return file;
}

/** A ratio for people: 0.43x, 2.2x, 710x. */
function times(r: number): string {
  if (!Number.isFinite(r)) return '–';
  return `${r >= 100 ? Math.round(r) : r >= 10 ? r.toFixed(1) : r.toFixed(2)}x`;
}

/** The few numbers that carry the argument, each with what limited it. */
function summary(lookup?: ResultEnvelope<LookupData>, peers?: ResultEnvelope<PeersData>, e2e?: ResultEnvelope<E2eData>): string[] {
  const out = ['## In short', ''];
  const r = lookup?.data.largestRatio;
  if (lookup && r) {
    const pb = lookup.data.points.filter((p) => p.series === 'pobox (lmdb)');
    const first = pb[0];
    const last = pb.at(-1);
    const p50s = pb.map((p) => p.p50);
    out.push(
      `- **Lookup vs scan:** from N = ${fmtN(first!.n)} to ${fmtN(last!.n)} stored messages, pobox's fetch of one user's ${lookup.data.perUser} messages stays at ` +
        `${Math.min(...p50s)}–${Math.max(...p50s)} ms p50, while the shared-log scan grows with N: at N = ${fmtN(r.n)} it is **${times(r.p50)} slower at p50 and ${times(r.p99)} at p99**. ` +
        (lookup.notes.find((n) => n.startsWith('Stopped at')) ?? `The ladder ended at N = ${fmtN(last!.n)} as planned.`),
    );
  }
  const pobox = peers?.data.peers.find((p) => p.name.startsWith('pobox'))?.ops;
  if (peers && pobox) {
    const others = peers.data.peers.filter((p) => p.ops && !p.name.startsWith('pobox'));
    const cmp = (op: 'send' | 'fetch' | 'delete'): string => others.map((p) => `${p.name.split(' ')[0]} ${times(p.ops![op].throughput / pobox[op].throughput)}`).join(', ');
    out.push(
      `- **Peers** (${peers.data.concurrency} concurrent clients, durable sends): pobox does ${pobox.send.throughput.toLocaleString('en')} sends/s, ` +
        `${pobox.fetch.throughput.toLocaleString('en')} page fetches/s and ${pobox.delete.throughput.toLocaleString('en')} deletes/s. The others, as a multiple of pobox: ` +
        `send ${cmp('send')}; fetch ${cmp('fetch')}; delete ${cmp('delete')}. ` +
        `NATS does not fsync before acknowledging a publish (measured), the others do` +
        (peers.data.diskFdatasyncMs ? ` (this disk syncs a 4 KiB append in ${peers.data.diskFdatasyncMs.p50} ms, p50).` : '.') +
        (peers.data.peers.some((p) => p.error)
          ? ` Could not run: ${peers.data.peers
              .filter((p) => p.error)
              .map((p) => `${p.name} (${p.error})`)
              .join('; ')}.`
          : ''),
    );
  }
  const storm = e2e?.data.storm;
  if (storm) {
    out.push(
      `- **Reconnect storm:** ${storm.devices.toLocaleString('en')} devices x ${storm.perDevice} pending, all reconnecting within ${storm.spreadMs / 1000} s: every message delivered and acked after **${(storm.totalMs / 1000).toFixed(1)} s**, ` +
        `${storm.lost} lost, ${storm.duplicates} duplicates, ${storm.serverMessagesLeft} left on the server. ` +
        ((storm.tcp?.ListenOverflows ?? 0) > 0
          ? `Limited by connection acceptance: the listen queue overflowed ${storm.tcp!.ListenOverflows} times and the stragglers waited in TCP's SYN retransmission backoff ` +
            `(connect -> open p99 ${storm.open.p99} ms; open -> durable ack about ${Math.max(0, storm.acked.p50 - storm.open.p50)} ms); the server's event loop was busy ${Math.round(storm.serverEventLoopPeak1s * 100)}% in the storm's busiest second and ${Math.round(storm.serverEventLoopBusy * 100)}% over all of it.`
          : `The server's event loop was busy ${Math.round(storm.serverEventLoopBusy * 100)}% of the storm (server ${storm.serverCores}, load generators ${storm.loadGeneratorCores} of ${storm.machineCores} cores); connects were spread over ${storm.spreadMs / 1000} s.`),
    );
  }
  const idle = e2e?.data.idle;
  if (idle) {
    out.push(
      `- **Idle connections:** ${idle.reached.toLocaleString('en')} held at **${idle.rssKiBPerConnection} KiB of server RSS each** ` +
        `(100,000 would need about ${Math.round((idle.rssKiBPerConnection * 100_000) / 1024)} MiB); limited by ` +
        (idle.limitedBy.startsWith('the open-files limit')
          ? `the open-files limit, ${idle.serverNofile} per process, that this container does not let even root raise.`
          : `${idle.limitedBy}.`),
    );
  }
  const gw = e2e?.data.gateway;
  if (gw) {
    const d1000 = gw.drain.find((d) => d.pending === 1000) ?? gw.drain.at(-1);
    out.push(
      `- **Gateway:** ${d1000 ? `drain of ${d1000.pending.toLocaleString('en')} pending in ${d1000.medianMs} ms (median)` : ''}` +
        `${gw.live ? `; live send -> receive p50 ${gw.live.p50} ms, p99 ${gw.live.p99} ms at ${gw.live.ratePerSec} msg/s (includes the fsync before the wake-up)` : ''}.`,
    );
  }
  out.push(
    '',
    'Re-run: `npm run bench` (all, ~20 min), `npm run bench -- --quick` (all, small, ~1.5 min; writes to `quick/`), or one part: `npm run bench:lookup`, ' +
      '`bench:peers`, `bench:e2e`, `bench:store`, `bench:dynamodb-cost`, `bench:gateway`; `npm run bench:report` rebuilds this page from the JSON. Every benchmark removes what it started ' +
      '(servers, temp dirs, databases, streams) when it ends, fails or is interrupted.',
    '',
  );
  return out.length > 4 ? out : [];
}

function readRun(dir: string): { startedAt: string; seconds: number; steps: RunStep[] } | undefined {
  const f = path.join(dir, 'run.json');
  if (!existsSync(f)) return undefined;
  return JSON.parse(readFileSync(f, 'utf8')) as { startedAt: string; seconds: number; steps: RunStep[] };
}

function machineLines(m: BenchMachine, all: Array<ResultEnvelope<unknown> | undefined>): string[] {
  const peers: Record<string, string> = {};
  const packages: Record<string, string> = {};
  for (const r of all) {
    Object.assign(peers, r?.machine.peers ?? {});
    Object.assign(packages, r?.machine.packages ?? {});
  }
  return [
    `- CPU: ${m.cpuModel}, ${m.cores} cores; memory ${m.memoryGiB} GiB; ${m.platform} ${m.release} (${m.arch}); Node ${m.node}`,
    `- packages: ${Object.entries(packages)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    `- servers measured against: ${
      Object.entries(peers)
        .map(([k, v]) => `${k}: ${v}`)
        .join('; ') || 'none'
    }`,
  ];
}

function fmtN(n: number): string {
  if (n >= 1e6) return `${n / 1e6}M`;
  if (n >= 1e3) return `${n / 1e3}k`;
  return String(n);
}

function lookupSection(r: ResultEnvelope<LookupData> | undefined): string[] {
  if (!r) return ['## Lookup vs scan', '', 'Not run (no lookup-vs-scan.json).', ''];
  const d = r.data;
  const series = [...new Set(d.points.map((p) => p.series))];
  const ns = [...new Set(d.points.map((p) => p.n))].sort((a, b) => a - b);
  const out = [
    "## Lookup vs scan: one user's pending messages as the store grows",
    '',
    `Each user has ${d.perUser} pending messages of ${d.bodyBytes} bytes; N is the total stored for everyone. pobox reads the user's key range`,
    `(through \`PostOffice.read\`); the shared log appends every message to one of ${d.partitions} partitions (segment files, group-committed`,
    "with fdatasync like pobox) and a reconnect scans its partition for the user's records (large sequential reads, byte comparison, only",
    'matches decoded). Both hold the same messages on the same disk, both warm in the page cache, and every answer is checked to be the same',
    `${d.perUser} messages. More partitions would divide the scan by their number, but it would still grow linearly with N; a partition`,
    'per user is what a key lookup is, and what a shared log cannot afford for millions of users. (`npm run bench:lookup`, bench/lookup-vs-scan.ts)',
    '',
    `![p50 and p99 fetch latency against N, log axes](${d.plot})`,
    '',
    `| N | ${series.map((s) => `${s} p50 / p99 ms`).join(' | ')} |`,
    `| --- | ${series.map(() => '---').join(' | ')} |`,
  ];
  for (const n of ns) {
    out.push(
      `| ${fmtN(n)} | ${series
        .map((s) => {
          const p = d.points.find((x) => x.n === n && x.series === s);
          return p ? `${p.p50} / ${p.p99} (${p.count} fetches)` : '–';
        })
        .join(' | ')} |`,
    );
  }
  out.push('');
  if (d.largestRatio) {
    out.push(
      `**At N = ${fmtN(d.largestRatio.n)} the shared-log scan is ${times(d.largestRatio.p50)} slower than pobox at p50 and ${times(d.largestRatio.p99)} at p99** ` +
        `(p50 / p99 ratio by N: ${d.ratios.map((x) => `${fmtN(x.n)} ${times(x.p50)} / ${times(x.p99)}`).join(', ')}).`,
      '',
    );
  }
  const disk = Object.entries(d.diskBytes).map(([k, v]) => `${k} ${round(v / 2 ** 20)} MiB`);
  if (disk.length) out.push(`On disk at the largest N: ${disk.join(', ')}.`, '');
  const loads = d.points.filter((p) => p.loadSeconds > 0).map((p) => `${p.series} to ${fmtN(p.n)}: ${p.loadSeconds} s`);
  out.push('What limited it:', '', ...r.notes.map((n) => `- ${n}`));
  out.push(`- Loading time per stage (not part of the latency): ${loads.join('; ')}.`, '');
  return out;
}

function peersSection(r: ResultEnvelope<PeersData> | undefined): string[] {
  if (!r) return ['## pobox vs the stores people use instead', '', 'Not run (no peers.json).', ''];
  const d = r.data;
  const pobox = d.peers.find((p) => p.name.startsWith('pobox'))?.ops;
  const out = [
    '## pobox vs the stores people use instead',
    '',
    `The same workload for each: ${d.users.toLocaleString('en')} users x ${d.perUser} messages of ${d.bodyBytes} bytes sent in shuffled order (durable send),`,
    `then ${d.fetches.toLocaleString('en')} fetches of a page of ${d.page} pending messages of a random user, then one "delete up to a seq"`,
    `(the ack of that page) per user, always from ${d.concurrency} concurrent clients. Answers are checked (pages start at the`,
    'right seq; after the deletes the rest is exactly what is left). Ratios are to pobox: above 1 means more throughput,',
    'or a longer latency, than pobox. (`npm run bench:peers`, bench/peers.ts)',
    '',
    '| peer | operation | ops/s | x pobox ops/s | p50 ms | p99 ms | x pobox p50 |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const p of d.peers) {
    if (!p.ops) {
      out.push(`| ${p.name} | could not run: ${p.error} | | | | | |`);
      continue;
    }
    for (const op of ['send', 'fetch', 'delete'] as const) {
      const o = p.ops[op];
      const base = pobox?.[op];
      out.push(
        `| ${p.name} | ${op} | ${o.throughput.toLocaleString('en')} | ${base ? times(o.throughput / base.throughput) : '–'} | ${o.p50} | ${o.p99} | ${base ? times(o.p50 / base.p50) : '–'} |`,
      );
    }
  }
  if (d.vsRedis?.length) {
    const cell = (v: number, target: number): string => `${v}x (${v >= target ? 'met' : '**not met**'})`;
    out.push(
      '',
      `pobox as a multiple of Redis lists (AOF always), same run; issue 9's targets: sends >= ${VS_REDIS_TARGETS.send}x, fetches >= ${VS_REDIS_TARGETS.fetch}x, deletes >= ${VS_REDIS_TARGETS.delete}x:`,
      '',
      '| pobox row | send | fetch | delete |',
      '| --- | --- | --- | --- |',
      ...d.vsRedis.map((v) => `| ${v.pobox} | ${cell(v.send, VS_REDIS_TARGETS.send)} | ${cell(v.fetch, VS_REDIS_TARGETS.fetch)} | ${cell(v.delete, VS_REDIS_TARGETS.delete)} |`),
    );
  }
  if (d.plot) out.push('', `![throughput per operation and peer](${d.plot})`);
  out.push('', 'What each peer\'s "acknowledged" means, and what else to know:', '');
  for (const p of d.peers) {
    if (p.durability) out.push(`- **${p.name}** (${p.version}): ${p.durability.replace(/\.$/, '')}. ${(p.notes ?? []).join(' ')}`);
  }
  out.push(
    "- All share the machine's cores with the benchmark process; the in-process pobox row has no network hop, the gateway row and the others go over loopback TCP.",
    ...(d.diskFdatasyncMs
      ? [
          `- What limits durable sends: this disk takes ${d.diskFdatasyncMs.p50} ms (p50; p99 ${d.diskFdatasyncMs.p99} ms) to append 4 KiB and fdatasync it. With ${d.concurrency} clients each waiting for its ack, ` +
            `a store that group-commits puts at most ${d.concurrency} sends in one commit; what a commit costs beyond that sync is the store's own work (an LMDB commit syncs twice, data pages then the meta page, and rewrites B-tree pages where the others append to a log).`,
        ]
      : []),
    ...r.notes.map((n) => `- ${n}`),
    '',
  );
  return out;
}

function e2eSection(r: ResultEnvelope<E2eData> | undefined): string[] {
  if (!r) return ['## End to end through the gateway', '', 'Not run (no e2e.json).', ''];
  const { storm, idle, gateway } = r.data;
  const out = [
    '## End to end through the gateway',
    '',
    '(`npm run bench:e2e`, bench/e2e.ts: the server in its own process, load generators in others, over WebSocket on 127.0.0.0/8.)',
    '',
  ];
  if (storm) {
    out.push(
      '### Reconnect storm',
      '',
      `${storm.devices.toLocaleString('en')} devices with ${storm.perDevice} pending messages each reconnect within ${storm.spreadMs} ms, each from its own source address;`,
      'a device is done when it has every message and the server has answered its ack with `acked` (the cursor is durable).',
      '',
      '| measure | value |',
      '| --- | --- |',
      `| time until every message was delivered and acked | **${storm.totalMs} ms** (${storm.completed.toLocaleString('en')}/${storm.devices.toLocaleString('en')} devices) |`,
      `| messages delivered / expected | ${storm.messagesDelivered.toLocaleString('en')} / ${storm.messagesExpected.toLocaleString('en')} |`,
      `| lost / duplicates / reconnects | ${storm.lost} / ${storm.duplicates} / ${storm.retries} |`,
      `| left on the server afterwards (messages; devices behind) | ${storm.serverMessagesLeft}; ${storm.serverPendingDevices} |`,
      `| per device, connect -> open: p50 / p99 / max ms | ${storm.open.p50} / ${storm.open.p99} / ${storm.open.max} |`,
      `| per device, connect -> caughtUp | ${storm.caughtUp.p50} / ${storm.caughtUp.p99} / ${storm.caughtUp.max} |`,
      `| per device, connect -> acked (durable) | ${storm.acked.p50} / ${storm.acked.p99} / ${storm.acked.max} |`,
      `| server RSS after the storm | ${storm.serverRssMiB} MiB |`,
      `| server event loop busy: busiest second / whole storm | ${Math.round(storm.serverEventLoopPeak1s * 100)}% / ${Math.round(storm.serverEventLoopBusy * 100)}% |`,
      `| CPU cores used: server / load generators (of ${storm.machineCores}) | ${storm.serverCores} / ${storm.loadGeneratorCores} |`,
      ...(storm.tcp
        ? [`| kernel: listen-queue overflows / SYN retransmissions / SYN cookies | ${storm.tcp.ListenOverflows} / ${storm.tcp.TCPSynRetrans} / ${storm.tcp.SyncookiesSent} |`]
        : []),
      '',
    );
    if (Object.keys(storm.errors).length) out.push(`Errors seen by clients: ${JSON.stringify(storm.errors)}.`, '');
  }
  if (idle) {
    out.push(
      '### Idle connections',
      '',
      `Idle WebSocket connections (hello done, nothing pending, only the server's heartbeat pings), one 127.x.y.z source address each; server memory after a full GC.`,
      '',
      '| connections | server RSS MiB | JS heap used MiB |',
      '| --- | --- | --- |',
      `| 0 | ${idle.baselineRssMiB} | |`,
      ...idle.steps.map((s) => `| ${s.connections.toLocaleString('en')} | ${s.rssMiB} | ${s.heapUsedMiB} |`),
      '',
      `**${idle.reached.toLocaleString('en')} idle connections held, ${idle.rssKiBPerConnection} KiB of server RSS per connection** (${idle.heapKiBPerConnection} KiB of it JS heap).`,
      `Limited by ${idle.limitedBy}.`,
      '',
    );
  }
  if (gateway) {
    out.push('### Drain and live latency (from the gateway benchmark)', '', '| measure | ms |', '| --- | --- |');
    for (const d of gateway.drain) out.push(`| drain ${d.pending.toLocaleString('en')} pending, hello -> last message (median) | ${d.medianMs} |`);
    if (gateway.live) out.push(`| live send -> receive at ${gateway.live.ratePerSec} msg/s, p50 / p99 | ${gateway.live.p50} / ${gateway.live.p99} |`);
    out.push('');
  }
  if (r.notes.length) out.push('What limited it:', '', ...r.notes.map((n) => `- ${n}`), '');
  if (r.data.errors.length) out.push('Errors:', '', ...r.data.errors.map((e) => `- ${e}`), '');
  return out;
}

/** Another benchmark's own markdown summary, headings moved down one level. */
function embedded(dir: string, quick: boolean, name: string, title: string): string[] {
  const candidates = [path.join(dir, `${name}.md`), ...(quick ? [path.join(BENCH_DIR, 'results', `${name}-quick.md`)] : [])];
  const file = candidates.find((f) => existsSync(f));
  if (!file) return [`## ${title}`, '', `Not run (no ${name}.md).`, ''];
  const body = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l, i) => !(i === 0 && l.startsWith('# ')))
    .map((l) => (l.startsWith('#') ? `#${l}` : l));
  const rel = path.relative(dir, file);
  return [`## ${title}`, '', `(Its own summary, from [${rel}](${rel}).)`, '', ...body, ''];
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = benchArgs();
  const file = await writeReport(resultsDir(args.quick), args.quick);
  process.stderr.write(`wrote ${file}\n`);
}

/** The capacity model's plot and a pointer to docs/capacity.md (written by `npm run bench:capacity`). */
function capacitySection(dir: string): string[] {
  if (!existsSync(path.join(dir, 'capacity.json'))) return [];
  return [
    '## Capacity at 500M users (`npm run bench:capacity`)',
    '',
    'DynamoDB units and dollars, storage, partitions, gateway nodes, Redis shards and the hot-mailbox limit for 500M users, computed from the per-message costs measured here: [docs/capacity.md](../../docs/capacity.md).',
    '',
    '![DynamoDB US$ per day against the number of users](capacity.svg)',
    '',
  ];
}
