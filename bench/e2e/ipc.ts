/**
 * Messages between the e2e orchestrator and its child processes (the server and the
 * load generators), over Node's IPC channel. Children are separate processes so the
 * server's memory is measured alone and each side has its own file-descriptor limit.
 */
export type ServerRequest =
  { cmd: 'prefill'; users: number; perUser: number; prefix: string } | { cmd: 'memory' } | { cmd: 'pending'; users: number; prefix: string } | { cmd: 'close' };

export type ServerReply =
  | { type: 'ready'; port: number; nofile: number }
  | { type: 'prefilled'; ms: number }
  | { type: 'memory'; rss: number; heapUsed: number; external: number; sessions: number; cpuMs: number; eluIdle: number; eluActive: number; eluPeak1s: number }
  | { type: 'pending'; pending: number; messagesLeft: number }
  | { type: 'error'; message: string };

export interface StormConfig {
  wsUrl: string;
  secret: string;
  prefix: string;
  first: number;
  count: number;
  perUser: number;
  /** All connects start within this many ms of `startAt` (epoch ms). */
  spreadMs: number;
  startAt: number;
  /** Give up on stragglers after this long. */
  timeoutMs: number;
  /** Second octet of the source addresses this generator uses (127.<octet>.x.y). */
  addressOctet: number;
}

export interface StormDevice {
  /** ms from this device's scheduled start to: socket open, caughtUp, acked. */
  open: number;
  caughtUp: number;
  acked: number;
  received: number;
  unique: number;
  duplicates: number;
  retries: number;
  done: boolean;
}

export type StormReply =
  { type: 'armed' } | { type: 'storm-done'; devices: StormDevice[]; lastAckAt: number; errors: Record<string, number>; cpuMs: number } | { type: 'error'; message: string };

export interface IdleConfig {
  wsUrl: string;
  secret: string;
  prefix: string;
  first: number;
  addressOctet: number;
  /** Most handshakes in flight at once. */
  inFlight: number;
}

export type IdleRequest = { cmd: 'open-to'; count: number } | { cmd: 'close' };
export type IdleReply =
  { type: 'ready'; nofile: number } | { type: 'opened'; open: number; failed: number; firstError?: string; errors: Record<string, number> } | { type: 'error'; message: string };

/** 127.<octet>.<b>.<c> for the i-th connection: one source address per connection, never .0 or .255. */
export function sourceAddress(octet: number, i: number): string {
  const b = Math.floor(i / 254) % 254;
  const c = (i % 254) + 1;
  return `127.${octet + Math.floor(i / (254 * 254))}.${b + 1}.${c}`;
}
