/**
 * Read V8's `--trace-gc` lines (one per collection, on the traced process's stdout) and
 * say what the collections cost over a window: how many young-generation (Scavenge) and
 * full (Mark-Compact) collections ran, their pauses, and how much the program allocated
 * in between (the young generation's growth from the end of one collection to the start
 * of the next). Used by the gateway benchmark to put the server's GC beside the live tail.
 *
 *   [1234:0x5f00]   5123 ms: Scavenge 12.1 (14.3) -> 11.2 (15.3) MB, 0.85 / 0.00 ms  (average mu = ...) allocation failure;
 */
import { round } from './stats.js';

export interface GcSummary {
  scavenges: number;
  markCompacts: number;
  /** Pause of each collection, in ms: median, 99th percentile (nearest rank), largest, sum. */
  pauseMs: { p50: number; p99: number; max: number; total: number };
  /** MiB allocated between collections over the window (a lower bound: what the next collection found). */
  allocatedMiB: number;
}

const LINE =
  /ms: (Scavenge|Mark-Compact|Mark-sweep|Minor Mark-Compact|Minor Mark-Sweep)\S*\s+([\d.]+) \([\d.]+\) -> ([\d.]+) \([\d.]+\) MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ [\d.]+ ms/;

export class GcTrace {
  private pauses: number[] = [];
  private scavenges = 0;
  private full = 0;
  private allocated = 0;
  private lastAfter: number | undefined;

  /** Feed one line of the traced process's output; returns false if it was not a GC line. */
  feed(line: string): boolean {
    const m = LINE.exec(line);
    if (!m) return false;
    const [, kind, before, after, pause] = m;
    if (this.lastAfter !== undefined) this.allocated += Math.max(0, Number(before) - this.lastAfter);
    this.lastAfter = Number(after);
    this.pauses.push(Number(pause));
    if (kind!.startsWith('Minor') || kind === 'Scavenge') this.scavenges++;
    else this.full++;
    return true;
  }

  /** Start a new window (what was fed so far is forgotten; allocation is counted from the last collection). */
  reset(): void {
    this.pauses = [];
    this.scavenges = 0;
    this.full = 0;
    this.allocated = 0;
  }

  summary(): GcSummary {
    const s = [...this.pauses].sort((a, b) => a - b);
    const at = (p: number): number => (s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!);
    return {
      scavenges: this.scavenges,
      markCompacts: this.full,
      pauseMs: { p50: round(at(50)), p99: round(at(99)), max: round(s[s.length - 1] ?? 0), total: round(s.reduce((a, b) => a + b, 0)) },
      allocatedMiB: round(this.allocated),
    };
  }
}
