export { createMetrics, PoboxMetrics, rejectReason, type DeliveryPath, type MetricsOptions, type RejectReason } from './metrics.js';
export { attachPostOffice, seedPending, type AttachedMetrics, type SeedResult } from './postoffice-metrics.js';
export { instrumentStore } from './instrument-store.js';
export { instrumentBus } from './instrument-bus.js';
export { OldestPending } from './oldest-pending.js';
export { addStats, emptyTotals, mergeTotals, totalsPage, type MailboxTotals, type TotalsPage } from './totals.js';
