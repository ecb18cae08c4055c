/**
 * Read a V8 .cpuprofile (written by `node --cpu-prof`) and say where the busy time went:
 * self time per function (name + file:line), as a share of the time the thread was not
 * idle. Used by the gateway benchmark to put the server's profile beside its numbers.
 *
 *   node --import tsx bench/lib/cpu-profile.ts <file.cpuprofile> [top]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileItem {
  /** Function name and where it lives (package or file:line). */
  what: string;
  /** Self time in ms. */
  ms: number;
  /** Share of busy (non-idle) time, in percent. */
  pct: number;
}

export interface ProfileSummary {
  wallMs: number;
  busyMs: number;
  /** Busy time as a share of wall time (the thread's utilisation), in percent. */
  busyPct: number;
  top: ProfileItem[];
  /** Self time grouped by where the code lives (node internals, ws, lmdb, pobox src, GC...). */
  byArea: ProfileItem[];
}

function location(url: string, line: number): string {
  if (!url) return '';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    const pkg = rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
    return `${pkg}/${rest.slice(pkg.includes('/') ? 2 : 1).join('/')}:${line + 1}`;
  }
  if (url.startsWith('node:')) return url;
  const src = url.indexOf('/src/');
  if (src >= 0) return `${url.slice(src + 1)}:${line + 1}`;
  return `${path.basename(url)}:${line + 1}`;
}

function area(name: string, url: string): string {
  if (name === '(garbage collector)') return 'GC';
  if (name === '(program)') return 'V8/native (program)';
  if (!url) return `native: ${name || '(anonymous)'}`;
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const src = url.indexOf('/src/');
  if (src >= 0)
    return url
      .slice(src + 1)
      .split('/')
      .slice(0, 2)
      .join('/');
  return path.basename(url);
}

export function summariseProfile(file: string, topN = 15): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    // timeDeltas[i] is the time before sample i; attribute the next delta to this sample.
    const dt = p.timeDeltas[i + 1] ?? 0;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + dt);
  }
  const fn = new Map<string, number>();
  const areas = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const name = n.callFrame.functionName;
    if (name === '(idle)') continue;
    busy += us;
    const key = `${name || '(anonymous)'} ${location(n.callFrame.url, n.callFrame.lineNumber)}`.trim();
    fn.set(key, (fn.get(key) ?? 0) + us);
    const a = area(name, n.callFrame.url);
    areas.set(a, (areas.get(a) ?? 0) + us);
  }
  const wall = p.endTime - p.startTime;
  const items = (m: Map<string, number>, n: number): ProfileItem[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([what, us]) => ({ what, ms: Math.round(us / 1000), pct: Math.round((1000 * us) / busy) / 10 }));
  return { wallMs: Math.round(wall / 1000), busyMs: Math.round(busy / 1000), busyPct: Math.round((1000 * busy) / wall) / 10, top: items(fn, topN), byArea: items(areas, 12) };
}

export function profileMarkdown(s: ProfileSummary): string[] {
  return [
    `Busy ${s.busyMs.toLocaleString('en-US')} ms of ${s.wallMs.toLocaleString('en-US')} ms wall (${s.busyPct}% of one core on the main thread).`,
    '',
    '| self time, by function | ms | % of busy |',
    '| --- | --- | --- |',
    ...s.top.map((t) => `| \`${t.what.replace(/\|/g, '\\|')}\` | ${t.ms} | ${t.pct} |`),
    '',
    '| self time, by area | ms | % of busy |',
    '| --- | --- | --- |',
    ...s.byArea.map((t) => `| ${t.what} | ${t.ms} | ${t.pct} |`),
  ];
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) throw new Error('usage: cpu-profile.ts <file.cpuprofile> [top]');
  console.log(profileMarkdown(summariseProfile(file, Number(process.argv[3] ?? 20))).join('\n'));
}
