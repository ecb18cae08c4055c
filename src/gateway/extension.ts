/**
 * The gateway's extension seam: what optional parts (metrics, receipts, the wake-up hook,
 * the demo page, a test's extra routes) get to attach themselves to a running gateway.
 * The gateway never imports those parts; the composition root (src/server/compose.ts)
 * hands them in as a list.
 */
import type { Bus } from '../bus/contract.js';
import type { TypedEmitter } from '../core/emitter.js';
import type { PostOffice } from '../postoffice/post-office.js';
import type { Authenticator } from './auth.js';
import type { ServerConfig } from './config.js';
import type { GatewayEvents } from './events.js';
import type { HttpRouter } from './http-router.js';
import type { Logger } from './logger.js';
import type { DeviceSession } from './session.js';

/** What an extension sees of the gateway it attaches to. */
export interface ServerContext {
  config: ServerConfig;
  postOffice: PostOffice;
  bus: Bus;
  events: TypedEmitter<GatewayEvents>;
  router: HttpRouter;
  auth: Authenticator;
  log: Logger;
  sessions: () => DeviceSession[];
}

/** What an extension leaves behind: closed during shutdown, after the sockets and before the store. */
export interface AttachedExtension {
  close?: () => Promise<void>;
}

/** Runs once the gateway is wired and before it listens; may add routes and listeners. */
export type ServerExtension = (ctx: ServerContext) => Promise<AttachedExtension | void> | AttachedExtension | void;
