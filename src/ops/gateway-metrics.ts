/** Feeds metrics from a gateway's typed events (connections, session states, deliveries, drains, refusals). */
import type { TypedEmitter } from '../core/emitter.js';
import type { GatewayEvents } from '../gateway/events.js';
import type { PoboxMetrics } from '../metrics/metrics.js';

export function followGateway(events: TypedEmitter<GatewayEvents>, metrics: PoboxMetrics, now: () => number = Date.now): () => void {
  const offs = [
    events.on('connection', () => metrics.connectionOpened()),
    events.on('disconnect', () => metrics.connectionClosed()),
    events.on('sessionState', (e) => metrics.sessionMoved(e.from, e.to)),
    events.on('refused', (e) => metrics.connectionsRefused.inc({ reason: e.reason })),
    // Sends the gateway refused itself count with the post office's own refusals.
    events.on('sendRefused', (e) => metrics.rejected(e.code)),
    events.on('caughtUp', (e) => metrics.drained(e.ms / 1000, e.drained)),
    events.on('delivered', (e) => metrics.deliveredMessage(e.live ? 'live' : 'drain', e.sentAt, now())),
  ];
  return () => offs.forEach((f) => f());
}
