/** pobox as a library: the post office over an engine of your choice. */
export { ErrorCode, PoboxError, isPoboxError, HTTP_STATUS, type ErrorBody } from './core/errors.js';
export type { DeviceId, MessageId, Seq, UserId } from './core/ids.js';
export type {
  AckResult,
  Clock,
  DeviceCursor,
  DeviceStart,
  GapNotice,
  GapReason,
  GroupSendResult,
  MailboxStats,
  ReadPage,
  RecipientOutcome,
  SendResult,
  StoredMessage,
} from './core/types.js';
export { systemClock } from './core/types.js';
export { LimitsSchema, PostOfficeConfigSchema, RetentionSchema, StoreConfigSchema, type PostOfficeConfig, type StoreConfig } from './core/config.js';
export type { MailboxStore, StoreCapabilities, StoreFactory } from './store/contract.js';
export { openStore } from './store/open.js';
export { PostOffice, type PostOfficeOptions } from './postoffice/post-office.js';
export type { PostOfficeEvents } from './postoffice/events.js';
export type { GroupSendInput, SendInput } from './postoffice/schemas.js';
export { exportLines, importLines, readImport, splitLines, type ImportOptions, type ImportResult } from './postoffice/export.js';
export type { MailboxSnapshotInput } from './postoffice/snapshot.js';
export { startServer, type RunningServer, type StartOptions, type ServerExtension, type ServerContext } from './server/compose.js';
export { ServerConfigSchema, type ServerConfig, type ServerConfigInput } from './gateway/config.js';
export { loadServerConfig } from './server/config.js';
export { mintToken } from './gateway/auth.js';
export type { GatewayEvents } from './gateway/events.js';
export { WakeupHook, WakeupHookConfigSchema, type Presence, type WakeupCallback, type WakeupHookOptions, type WakeupPayload } from './postoffice/wakeup-hook.js';
export { enableReceipts, parseReceipt, receiptId, RECEIPT_SENDER, type ReceiptBody, type ReceiptsOptions } from './postoffice/receipts.js';
export { attachPostOffice, createMetrics, instrumentBus, instrumentStore, PoboxMetrics, seedPending } from './metrics/index.js';
