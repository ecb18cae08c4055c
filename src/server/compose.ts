/**
 * The composition root: the one place that opens a store, a post office, a bus and the
 * metrics registry, starts the gateway over them with the operator extras plugged into its
 * extension seam, and closes what it opened. `pobox serve` and library users both start a
 * server here.
 *
 *   const server = await startServer({ port: 0, dataDir: tmp, logLevel: 'silent' });
 *   server.url        // 'http://127.0.0.1:41234'  (WebSocket: server.wsUrl, i.e. ws://.../ws)
 *   await server.close();   // gateway first (sockets, extensions), then bus, then store
 *
 * `startServer(config, options?)`:
 * - `config` is the ServerConfigSchema input (src/gateway/config.ts); everything has a
 *   default, so `{ port: 0, dataDir }` is enough. `loadServerConfig()` (src/server/config.ts)
 *   reads flags, environment and a config file the way `pobox serve` does.
 * - `options.store` / `options.bus` / `options.postOffice` lend an already opened engine,
 *   bus or post office (several nodes in one process over one MemoryBus); the server then
 *   leaves them open. `options.logDestination` redirects log lines.
 * - `options.extensions` attach more parts before the server listens (ServerExtension,
 *   src/gateway/extension.ts), after metrics, receipts, the wake-up hook and the demo page.
 */
import type { Bus } from '../bus/contract.js';
import { openBus } from '../bus/open.js';
import { parseConfig } from '../core/config.js';
import { createAuthenticator, resolveSecrets, type Authenticator } from '../gateway/auth.js';
import { ServerConfigSchema, storeConfigOf, type ServerConfig, type ServerConfigInput } from '../gateway/config.js';
import type { GatewayEvents } from '../gateway/events.js';
import type { ServerExtension } from '../gateway/extension.js';
import type { HttpRouter } from '../gateway/http-router.js';
import { createLogger, type Logger } from '../gateway/logger.js';
import { startGateway, type Gateway } from '../gateway/server.js';
import type { DeviceSession } from '../gateway/session.js';
import { instrumentBus } from '../metrics/instrument-bus.js';
import { instrumentStore } from '../metrics/instrument-store.js';
import { createMetrics, type PoboxMetrics } from '../metrics/metrics.js';
import { attachOps, type Ops } from '../ops/attach.js';
import type { TypedEmitter } from '../core/emitter.js';
import { BackgroundFailures } from '../ops/background-failures.js';
import { PostOffice } from '../postoffice/post-office.js';
import type { MailboxStore } from '../store/contract.js';
import { openStore } from '../store/open.js';

export type { ServerContext, ServerExtension } from '../gateway/extension.js';

export interface StartOptions {
  store?: MailboxStore;
  bus?: Bus;
  postOffice?: PostOffice;
  logger?: Logger;
  logDestination?: NodeJS.WritableStream;
  extensions?: readonly ServerExtension[];
  /** Metrics registry to fill (default: a new one per server). */
  metrics?: PoboxMetrics;
}

export interface RunningServer {
  /** http://host:port */
  readonly url: string;
  /** ws://host:port/ws */
  readonly wsUrl: string;
  readonly port: number;
  readonly host: string;
  readonly config: ServerConfig;
  readonly postOffice: PostOffice;
  readonly bus: Bus;
  readonly events: TypedEmitter<GatewayEvents>;
  readonly router: HttpRouter;
  readonly auth: Authenticator;
  readonly log: Logger;
  /** This server's metrics (served at GET /metrics with an admin key). */
  readonly metrics: PoboxMetrics;
  /** Presence, the wake-up hook and demo mode as attached (src/ops/attach.ts). */
  readonly ops: Ops;
  /** Path of the data dir secret in use (undefined when secrets come from config). */
  readonly secretFile: string | undefined;
  /** True when this start created the secret file. */
  readonly secretCreated: boolean;
  /** Live device sessions on this node. */
  sessions(): DeviceSession[];
  /** Graceful stop; safe to call more than once. */
  close(): Promise<void>;
}

export async function startServer(input: ServerConfigInput = {}, options: StartOptions = {}): Promise<RunningServer> {
  const config = parseConfig(ServerConfigSchema, input, 'server config');
  const log = options.logger ?? createLogger(config.logLevel, options.logDestination);
  const { secrets, file: secretFile, createdFile } = resolveSecrets(config);
  const auth = await createAuthenticator(config.auth, secrets);

  const ownsPostOffice = !options.postOffice;
  const ownsStore = !options.store && ownsPostOffice;
  const store = options.postOffice?.store ?? options.store ?? (await openStore(storeConfigOf(config)));
  // A store lent by the caller stays open when our post office closes.
  // Every store call is timed for /metrics (pobox_store_operation_seconds).
  const metrics = options.metrics ?? createMetrics({ processMetrics: config.processMetrics });
  // DynamoDB's consumed capacity, as the engine counts it, for pobox_store_capacity_units_total.
  if (store.capacity) metrics.setCapacityProbe(() => store.capacity!());
  const postOffice = options.postOffice ?? new PostOffice({ store: instrumentStore(ownsStore ? store : borrowed(store), metrics), config: config.postOffice });
  // Background failures (sweeper, deferred deletes, presence, hook, publishes): logged once per burst, counted.
  const failures = new BackgroundFailures(log, metrics);
  const stopFailures = postOffice.events.on('backgroundFailure', ({ source, err }) => failures.report(source, err));
  const stopWriteHealth = postOffice.onWriteHealth((h) => metrics.storeWriteFailures.set(h.consecutiveFailures));
  const ownsBus = !options.bus;
  let bus: Bus | undefined;
  let gateway: Gateway;
  let ops: Ops | undefined;
  try {
    bus = instrumentBus(options.bus ?? (await openBus(config.bus, log.child({ component: 'bus' }))), metrics);
    // Metrics, receipts, the wake-up hook and the demo page attach first, like any extension.
    const opsExtension: ServerExtension = async (ctx) => (ops = await attachOps({ ...ctx, metrics, failures }));
    const observed = { reportFailure: failures.report, onReadiness: (ready: boolean) => metrics.ready.set(ready ? 1 : 0) };
    gateway = await startGateway({ config, postOffice, bus, auth, log, ...observed }, [opsExtension, ...(options.extensions ?? [])]);
  } catch (err) {
    if (bus && ownsBus) await bus.close();
    if (ownsPostOffice) await postOffice.close();
    throw err;
  }

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await gateway.close();
      if (ownsBus) await bus.close().catch((err: unknown) => log.warn({ err: String(err) }, 'bus close failed'));
      if (ownsPostOffice) await postOffice.close();
      stopFailures();
      stopWriteHealth();
      failures.flush();
      log.info('stopped');
    })();
    return closing;
  };

  return {
    url: gateway.url,
    wsUrl: gateway.wsUrl,
    port: gateway.port,
    host: gateway.host,
    config,
    postOffice,
    bus,
    events: gateway.events,
    router: gateway.router,
    auth,
    log,
    metrics,
    ops: ops!,
    secretFile,
    secretCreated: createdFile !== undefined,
    sessions: () => gateway.sessions(),
    close,
  };
}

/** The same store, with close() left to its owner. */
function borrowed(store: MailboxStore): MailboxStore {
  return {
    engine: store.engine,
    capabilities: store.capabilities,
    append: (items, limits) => store.append(items, limits),
    read: (req) => store.read(req),
    readIfRegistered: (req) => store.readIfRegistered(req),
    ack: (user, device, upTo, opts) => store.ack(user, device, upTo, opts),
    registerDevice: (user, device, start, now, max) => store.registerDevice(user, device, start, now, max),
    removeDevice: (user, device) => store.removeDevice(user, device),
    listDevices: (user) => store.listDevices(user),
    stats: (user, now) => store.stats(user, now),
    purge: (user) => store.purge(user),
    sweep: (now, max) => store.sweep(now, max),
    users: (opts) => store.users(opts),
    exportPage: (user, afterSeq, upTo, limit) => store.exportPage(user, afterSeq, upTo, limit),
    restore: (snapshot) => store.restore(snapshot),
    counters: () => store.counters(),
    close: async () => undefined,
    ...(store.onBackgroundFailure ? { onBackgroundFailure: (listener: (err: unknown) => void) => store.onBackgroundFailure!(listener) } : {}),
  };
}
