/**
 * What GET /readyz answers: can this node take traffic now? Answered within its own
 * deadline (readiness.timeoutMs), whatever the store does:
 *
 * - shutting down: 503 (the router refuses every route but /healthz then);
 * - the store does not answer a small read in time: 503 "store is not answering";
 * - store writes failed `readiness.writeFailures` times in a row (full disk, frozen
 *   store): a probe write (a message to a reserved user that expires at once) decides;
 *   503 "store writes are failing" until one succeeds, so a node out of rotation notices
 *   on its own when it can take writes again;
 * - the bus: reported in the body, never a reason for 503 (sessions poll the store while it
 *   is down; pulling every node during a Redis outage would turn slow delivery into none).
 *
 * 503 carries the typed error body `{"error":{"code":"UNAVAILABLE","message":<reason>}}`.
 */
import type { Bus } from '../bus/contract.js';
import { PoboxError } from '../core/errors.js';
import type { PostOffice } from '../postoffice/post-office.js';

/** The reserved mailbox readiness reads and writes (never a real user's). */
export const READINESS_PROBE_USER = 'readyz.probe';

export interface ReadinessConfig {
  timeoutMs: number;
  writeFailures: number;
}

export interface ReadyBody {
  ok: true;
  store: string;
  bus: string;
  busHealthy: boolean;
  storeWriteFailures: number;
}

export class Readiness {
  constructor(
    private readonly deps: {
      postOffice: PostOffice;
      bus: Bus;
      config: ReadinessConfig;
      /** Told every answer, for the pobox_ready gauge. */
      onResult?: (ready: boolean) => void;
    },
  ) {}

  /** Resolves with the 200 body, or rejects with UNAVAILABLE and the reason. */
  async check(): Promise<ReadyBody> {
    try {
      const body = await this.probe();
      this.deps.onResult?.(true);
      return body;
    } catch (err) {
      this.deps.onResult?.(false);
      throw err;
    }
  }

  private async probe(): Promise<ReadyBody> {
    const { postOffice: po, bus, config } = this.deps;
    const started = Date.now();
    const left = (): number => Math.max(1, config.timeoutMs - (Date.now() - started));
    try {
      await po.probeRead(READINESS_PROBE_USER, left());
    } catch (err) {
      throw new PoboxError('UNAVAILABLE', `store is not answering: ${(err as Error).message}`, { cause: err });
    }
    const health = po.writeHealth();
    if (health.consecutiveFailures >= config.writeFailures) {
      try {
        await po.probeWrite(READINESS_PROBE_USER, left());
      } catch {
        const h = po.writeHealth();
        const since = h.failingSince ? ` since ${new Date(h.failingSince).toISOString()}` : '';
        throw new PoboxError('UNAVAILABLE', `store writes are failing (${h.consecutiveFailures} in a row${since}): ${h.lastError ?? 'unknown error'}`);
      }
    }
    return { ok: true, store: po.store.engine, bus: bus.kind, busHealthy: bus.healthy(), storeWriteFailures: po.writeHealth().consecutiveFailures };
  }
}
