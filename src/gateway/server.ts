/**
 * The pobox server in-process: HTTP API and WebSocket delivery on one port.
 *
 *   const server = await startServer({ port: 0, dataDir: tmp, logLevel: 'silent' });
 *   server.url        // 'http://127.0.0.1:41234'  (WebSocket: server.wsUrl, i.e. ws://.../ws)
 *   server.port       // 41234
 *   await server.close();   // graceful: stop accepting, finish sends, close sockets 1001, close store
 *
 * `startServer(config, options?)`:
 * - `config` is the ServerConfigSchema input (src/gateway/config.ts); everything has a
 *   default, so `{ port: 0, dataDir }` is enough. Use `loadServerConfig()` to read flags,
 *   environment and a config file the way `pobox serve` does.
 * - `options.store` / `options.bus` inject an already opened engine or bus (several
 *   nodes in one process over one MemoryBus; the server then does not close them),
 *   `options.logDestination` redirects log lines, `options.postOffice` a ready post office.
 *
 * What the returned RunningServer exposes for other parts (metrics, demo page, benches):
 * `postOffice` (and its `events`), `bus`, `events` (typed gateway events, see events.ts),
 * `router` (add routes: `server.router.route('GET', '/metrics', handler)`), `sessions()`,
 * `secretFile` (the generated secret's path, when one was created or used), `auth`.
 * `options.extensions` attach such parts before the server listens (see ServerExtension).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Bus } from '../bus/contract.js';
import { toPoboxError } from '../core/errors.js';
import { CloseCode } from '../core/protocol.js';
import { TypedEvents } from '../postoffice/events.js';
import { PostOffice } from '../postoffice/post-office.js';
import type { MailboxStore } from '../store/contract.js';
import { openStore } from '../store/open.js';
import { bearerOf, createAuthenticator, resolveSecrets, type Authenticator } from './auth.js';
import { openBus } from './bus.js';
import { parseConfig } from '../core/config.js';
import { ServerConfigSchema, storeConfigOf, type ServerConfig, type ServerConfigInput } from './config.js';
import type { GatewayEvents } from './events.js';
import { registerHttpApi } from './http-api.js';
import { HttpRouter } from './http-router.js';
import { createLogger, type Logger } from './logger.js';
import { AddressLimiter } from './rate-limit.js';
import { DeviceSession } from './session.js';
import { createMetrics, type PoboxMetrics } from '../metrics/metrics.js';
import { instrumentBus } from '../metrics/instrument-bus.js';
import { instrumentStore } from '../metrics/instrument-store.js';
import { attachOps, type Ops } from '../ops/attach.js';

/** Pending connections the kernel may queue before we accept them. */
const LISTEN_BACKLOG = 4096;

/** Paths that accept WebSocket upgrades. `/ws` is the documented one. */
export const WS_PATHS: ReadonlySet<string> = new Set(['/ws', '/v1/ws', '/']);

/** What an extension (metrics, demo page, receipts) gets to attach itself to a server. */
export interface ServerContext {
  config: ServerConfig;
  postOffice: PostOffice;
  bus: Bus;
  events: TypedEvents<GatewayEvents>;
  router: HttpRouter;
  auth: Authenticator;
  log: Logger;
  sessions: () => DeviceSession[];
}

/**
 * Runs once the server is wired and before it listens; may add routes and listeners.
 * Whatever it returns is closed during shutdown, after the sockets and before the store.
 */
export type ServerExtension = (ctx: ServerContext) => Promise<{ close?: () => Promise<void> } | void> | { close?: () => Promise<void> } | void;

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
  readonly events: TypedEvents<GatewayEvents>;
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

function sessionKey(user: string, device: string): string {
  return `${user}\u0000${device}`;
}

export async function startServer(input: ServerConfigInput = {}, options: StartOptions = {}): Promise<RunningServer> {
  const config = parseConfig(ServerConfigSchema, input, 'server config');
  const log = options.logger ?? createLogger(config.logLevel, options.logDestination);
  const { secrets, file: secretFile, createdFile } = resolveSecrets(config);
  const auth: Authenticator = await createAuthenticator(config.auth, secrets);

  const ownsPostOffice = !options.postOffice;
  const ownsStore = !options.store && ownsPostOffice;
  const store = options.postOffice?.store ?? options.store ?? (await openStore(storeConfigOf(config)));
  // A store lent by the caller stays open when our post office closes.
  // Every store call is timed for /metrics (pobox_store_operation_seconds).
  const metrics = options.metrics ?? createMetrics({ processMetrics: config.processMetrics });
  const postOffice = options.postOffice ?? new PostOffice({ store: instrumentStore(ownsStore ? store : borrowed(store), metrics), config: config.postOffice });
  let bus: Bus;
  try {
    bus = instrumentBus(options.bus ?? (await openBus(config.bus, log)), metrics);
  } catch (err) {
    if (ownsPostOffice) await postOffice.close();
    throw err;
  }
  const ownsBus = !options.bus;
  const events = new TypedEvents<GatewayEvents>((err) => log.warn({ err: String(err) }, 'gateway event listener threw'));

  // Every stored message wakes its user's sessions, on this node and (through the bus) others.
  const wakeMax = config.session.wakeMessageMaxBytes;
  const stopWakes = postOffice.events.on('stored', ({ user, epoch, message }) => {
    const wake = message.bytes <= wakeMax ? { user, epoch, seq: message.seq, message } : { user, epoch, seq: message.seq };
    bus.publish(wake).catch((err: unknown) => log.warn({ user, err: String(err) }, 'wake publish failed; sessions will read on their next wake or poll'));
  });

  const live = new Map<string, DeviceSession>();
  const allSessions = new Set<DeviceSession>();
  const sendsInFlight = new Set<Promise<unknown>>();
  let shuttingDown = false;

  const trackSend = (p: Promise<unknown>): void => {
    const settled = p.then(
      () => undefined,
      () => undefined,
    );
    sendsInFlight.add(settled);
    void settled.then(() => sendsInFlight.delete(settled));
  };

  const stopHealth = bus.onHealth((healthy) => {
    log.warn({ bus: bus.kind, healthy }, healthy ? 'bus healthy again' : 'bus unhealthy; sessions poll the store');
    for (const s of allSessions) s.setPolling(!healthy);
  });

  const router = new HttpRouter({ maxBodyBytes: config.limits.maxHttpBodyBytes, log, events, unavailable: () => shuttingDown });
  registerHttpApi(router, { postOffice, bus, auth, events, trackSend });

  const http: Server = createServer(router.handle);
  http.on('clientError', (err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
    log.debug({ err: err.message }, 'http client error');
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: config.limits.maxFrameBytes, perMessageDeflate: false });
  const connectLimiter = new AddressLimiter(config.limits.connectRate.perSecond, config.limits.connectRate.burst);

  /** Complete the upgrade and close at once with a code, so browsers can see why. */
  const refuse = (req: IncomingMessage, socket: Duplex, head: Buffer, code: number, reason: string, kind: GatewayEvents['refused']['reason']): void => {
    const remote = req.socket.remoteAddress ?? 'unknown';
    events.emit('refused', { reason: kind, remote });
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => undefined);
      const codeName = code === CloseCode.UNAUTHORIZED ? 'UNAUTHORIZED' : code === CloseCode.RATE_LIMITED ? 'RATE_LIMITED' : 'UNAVAILABLE';
      ws.send(JSON.stringify({ type: 'error', code: codeName, message: reason }));
      ws.close(code, reason.slice(0, 120));
    });
  };

  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    void (async () => {
      let url: URL;
      try {
        url = new URL(req.url ?? '/', 'http://localhost');
      } catch {
        socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
        return;
      }
      if (!WS_PATHS.has(url.pathname)) {
        socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n');
        return;
      }
      const remote = req.socket.remoteAddress ?? 'unknown';
      // One id per connection on every log line about it, as HTTP requests have (x-request-id when valid).
      const given = req.headers['x-request-id'];
      const requestId = typeof given === 'string' && /^[\w.:-]{1,64}$/.test(given) ? given : randomUUID();
      if (shuttingDown) return refuse(req, socket, head, CloseCode.GOING_AWAY, 'server is shutting down', 'shutting-down');
      if (!connectLimiter.take(remote)) return refuse(req, socket, head, CloseCode.RATE_LIMITED, 'too many connection attempts; back off', 'rate-limited');
      let principal;
      try {
        principal = await auth.verifyUserToken(bearerOf(req.headers.authorization, url));
      } catch (err) {
        log.info({ requestId, remote, err: toPoboxError(err).message }, 'connection refused: unauthorized');
        return refuse(req, socket, head, CloseCode.UNAUTHORIZED, toPoboxError(err).message, 'unauthorized');
      }
      if (shuttingDown) return refuse(req, socket, head, CloseCode.GOING_AWAY, 'server is shutting down', 'shutting-down');
      wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
        const { user, device } = principal;
        const session = new DeviceSession(ws, user, device, remote, {
          postOffice,
          bus,
          session: config.session,
          limits: config.limits,
          log: log.child({ requestId }),
          events,
          trackSend,
          shuttingDown: () => shuttingDown,
          onEnd: (s) => {
            allSessions.delete(s);
            const key = sessionKey(s.user, s.device);
            if (live.get(key) === s) live.delete(key);
          },
        });
        const key = sessionKey(user, device);
        const previous = live.get(key);
        live.set(key, session);
        allSessions.add(session);
        if (previous) previous.close(CloseCode.REPLACED, 'replaced by a newer connection of this device');
        log.info({ requestId, user, device, remote, replaced: previous !== undefined }, 'connection opened');
        events.emit('connection', { user, device, remote });
      });
    })().catch((err: unknown) => {
      log.error({ err: String(err) }, 'upgrade failed');
      socket.destroy();
    });
  });

  const attached: Array<{ close?: () => Promise<void> }> = [];
  const closeExtensions = async (): Promise<void> => {
    for (const ext of attached.reverse()) await ext.close?.().catch((err: unknown) => log.warn({ err: String(err) }, 'extension close failed'));
  };
  /** Undo what start-up did so far, when it fails before listening. */
  const unwind = async (): Promise<void> => {
    await closeExtensions();
    stopWakes();
    stopHealth();
    if (ownsBus) await bus.close();
    if (ownsPostOffice) await postOffice.close();
  };
  const ctx: ServerContext = { config, postOffice, bus, events, router, auth, log, sessions: () => [...allSessions] };
  let ops: Ops | undefined;
  // Metrics, receipts, the wake-up hook and the demo page attach first, like any extension.
  const opsExtension: ServerExtension = async (c) => {
    ops = await attachOps({ ...c, metrics });
    return ops;
  };
  try {
    for (const extend of [opsExtension, ...(options.extensions ?? [])]) {
      const ext = await extend(ctx);
      if (ext) attached.push(ext);
    }
  } catch (err) {
    await unwind();
    throw err;
  }

  const heartbeat = setInterval(() => {
    const now = Date.now();
    for (const s of allSessions) s.heartbeat(now);
    connectLimiter.prune();
  }, config.session.heartbeatMs);
  heartbeat.unref();

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      http.off('listening', onListening);
      reject(toPoboxError(err, 'UNAVAILABLE'));
    };
    const onListening = (): void => {
      http.off('error', onError);
      resolve();
    };
    http.once('error', onError);
    http.once('listening', onListening);
    // A reconnect storm (every device of a region coming back at once) overflows Node's
    // default accept backlog of 511 and leaves clients in SYN retransmission backoff for
    // seconds (bench/results/README.md); the kernel caps this at net.core.somaxconn.
    http.listen({ port: config.port, host: config.host, backlog: LISTEN_BACKLOG });
  }).catch(async (err: unknown) => {
    clearInterval(heartbeat);
    await unwind();
    throw err;
  });
  http.on('error', (err) => log.error({ err: err.message }, 'http server error'));

  const port = (http.address() as AddressInfo).port;
  const hostForUrl = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `http://${hostForUrl}:${port}`;
  log.info({ url, store: store.engine, bus: bus.kind }, 'listening');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      shuttingDown = true;
      log.info('shutting down');
      const httpClosed = new Promise<void>((resolve) => http.close(() => resolve()));
      // Let commits already handed to the post office finish and their replies go out.
      await withTimeout(Promise.allSettled([...sendsInFlight]), config.shutdownTimeoutMs);
      const socketsClosed = [...allSessions].map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.ws.readyState === s.ws.CLOSED) return resolve();
            s.ws.once('close', () => resolve());
            s.close(CloseCode.GOING_AWAY, 'server shutting down');
          }),
      );
      await withTimeout(Promise.all(socketsClosed), Math.min(2000, config.shutdownTimeoutMs));
      for (const client of wss.clients) client.terminate();
      clearInterval(heartbeat);
      stopWakes();
      stopHealth();
      http.closeIdleConnections();
      await withTimeout(httpClosed, Math.min(2000, config.shutdownTimeoutMs));
      http.closeAllConnections();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await closeExtensions();
      if (ownsBus) await bus.close().catch((err: unknown) => log.warn({ err: String(err) }, 'bus close failed'));
      if (ownsPostOffice) await postOffice.close();
      log.info('stopped');
    })();
    return closing;
  };

  return {
    url,
    wsUrl: `ws://${hostForUrl}:${port}/ws`,
    port,
    host: config.host,
    config,
    postOffice,
    bus,
    events,
    router,
    auth,
    log,
    metrics,
    ops: ops!,
    secretFile,
    secretCreated: createdFile !== undefined,
    sessions: () => [...allSessions],
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
    ack: (user, device, upTo) => store.ack(user, device, upTo),
    registerDevice: (user, device, start, now, max) => store.registerDevice(user, device, start, now, max),
    removeDevice: (user, device) => store.removeDevice(user, device),
    listDevices: (user) => store.listDevices(user),
    stats: (user, now) => store.stats(user, now),
    purge: (user) => store.purge(user),
    sweep: (now, max) => store.sweep(now, max),
    users: (opts) => store.users(opts),
    counters: () => store.counters(),
    close: async () => undefined,
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
