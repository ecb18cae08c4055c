/**
 * The kernel's TCP counters (Linux /proc/net/netstat), to say what limited a connection
 * storm: a full listen queue (ListenOverflows), SYN cookies, SYN retransmissions. They
 * are machine-wide, so they are read right before and after the measured burst.
 */
import { readFileSync } from 'node:fs';

export type TcpCounters = Record<string, number>;

const WANTED = ['ListenOverflows', 'ListenDrops', 'TCPSynRetrans', 'SyncookiesSent', 'TCPReqQFullDoCookies', 'TCPReqQFullDrop'];

export function tcpCounters(): TcpCounters | undefined {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
    const head = lines.findIndex((l) => l.startsWith('TcpExt:'));
    const names = lines[head]!.split(/\s+/).slice(1);
    const values = lines[head + 1]!.split(/\s+/).slice(1).map(Number);
    const out: TcpCounters = {};
    names.forEach((n, i) => {
      if (WANTED.includes(n)) out[n] = values[i]!;
    });
    return out;
  } catch {
    return undefined; // not Linux
  }
}

export function diffCounters(before: TcpCounters | undefined, after: TcpCounters | undefined): TcpCounters | undefined {
  if (!before || !after) return undefined;
  return Object.fromEntries(Object.keys(after).map((k) => [k, after[k]! - (before[k] ?? 0)]));
}
