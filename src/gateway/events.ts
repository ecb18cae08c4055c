/**
 * What the gateway tells observers (metrics, the demo page, tests). Subscribe with
 * `server.events.on('connection', fn)`; listeners run synchronously and a throwing
 * listener never breaks the gateway (TypedEmitter catches it).
 */
import type { ErrorCode } from '../core/errors.js';
import type { GapNotice } from '../core/types.js';
import type { SessionState } from './session-state.js';

export interface GatewayEvents {
  /** A WebSocket connection was authenticated and registered for its device. */
  connection: { user: string; device: string; remote: string };
  /**
   * A device session changed state (session-state.ts has the allowed moves); `from` is
   * absent for a session just made, in its first state. Every session ends in `closed`.
   */
  sessionState: { user: string; device: string; from?: SessionState; to: SessionState };
  /** A connection ended; `code` is the WebSocket close code. */
  disconnect: { user: string; device: string; code: number; reason: string; durationMs: number; sent: number };
  /** The backlog that existed at connect was sent (`drained` messages, `ms` since hello). */
  caughtUp: { user: string; device: string; seq: number; drained: number; ms: number };
  /**
   * A gap notice was written to a device (in caughtUp or a gap frame): messages in
   * from..to it had not acked are gone without being shown to it.
   */
  gap: { user: string; device: string } & GapNotice;
  /**
   * One message frame written to a device; `live` when sent after caughtUp (otherwise
   * part of the drain), `fast` when it came from the wake-up itself without a read.
   */
  delivered: { user: string; device: string; seq: number; sentAt: number; live: boolean; fast: boolean };
  /** A send over WebSocket or HTTP was stored (or was a duplicate). */
  accepted: { from: string; to: string; seq: number; duplicate: boolean; via: 'ws' | 'http' };
  /** A frame or request was answered with an error. */
  error: { code: ErrorCode; via: 'ws' | 'http'; user?: string; device?: string };
  /** An HTTP request finished. `route` is the pattern (`/v1/users/:user/devices`), not the path. */
  http: { method: string; route: string; status: number; ms: number };
  /**
   * A send was refused by the gateway before it reached the post office (bad frame, rate
   * limit, shutting down, auth); the post office announces its own refusals as `rejected`.
   */
  sendRefused: { code: ErrorCode; via: 'ws' | 'http'; to?: string };
  /** A connection attempt was refused before a session started. */
  refused: { reason: 'unauthorized' | 'rate-limited' | 'shutting-down' | 'bad-request'; remote: string };
}
