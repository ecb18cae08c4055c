/**
 * The gateway: HTTP API and WebSocket delivery on one port, over a post office and a bus
 * it is given. It opens nothing and closes neither of them: the composition root
 * (src/server/compose.ts, `startServer`) opens the store, bus and metrics, plugs the
 * optional parts in through the extension seam (extension.ts) and closes what it opened.
 *
 *   const gateway = await startGateway({ config, postOffice, bus, auth, log }, extensions);
 *   gateway.url / gateway.wsUrl / gateway.port
 *   await gateway.close();   // graceful: stop accepting, finish sends, close sockets 1001, close extensions
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Bus, Wake } from '../bus/contract.js';
import { HTTP_STATUS, toPoboxError } from '../core/errors.js';
import { CloseCode, ENCODINGS, type Encoding } from '../core/protocol.js';
import { TypedEmitter } from '../core/emitter.js';
import type { PostOffice } from '../postoffice/post-office.js';
import { bearerOf, type Authenticator } from './auth.js';
import type { ServerConfig } from './config.js';
import type { GatewayEvents } from './events.js';
import type { AttachedExtension, ServerContext, ServerExtension } from './extension.js';
import { registerHttpApi } from './http-api.js';
import { answerClientError, answerHandshakeError, rawErrorResponse } from './http-client-error.js';
import { httpServerOptions } from './http-timeouts.js';
import { Readiness } from './readiness.js';
import { parseRequestTarget } from './request-target.js';
import { startSafetyPoll } from './safety-poll.js';
import { HttpRouter } from './http-router.js';
import type { Logger } from './logger.js';
import { AddressLimiter } from './rate-limit.js';
import { DeviceSession, flatRandomId, type SessionDeps } from './session.js';
import { EphemeralRouter } from './ephemeral.js';

export type { ServerContext, ServerExtension } from './extension.js';

/**
 * Pending connections the kernel may queue before we accept them: asked for generously,
 * because Linux caps it at net.core.somaxconn anyway (4096 by default since 5.4). The
 * effective value is in the `listening` log line; an operator expecting reconnect storms
 * raises somaxconn (docs/operations.md) and needs no other change.
 */
const LISTEN_BACKLOG = 65_535;

/** The accept queue the kernel gives a listen(LISTEN_BACKLOG): capped by net.core.somaxconn on Linux; unknown elsewhere. */
function effectiveBacklog(): number | undefined {
  try {
    const max = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
    return Number.isFinite(max) && max > 0 ? Math.min(LISTEN_BACKLOG, max) : undefined;
  } catch {
    return undefined;
  }
}

/** Paths that accept WebSocket upgrades. `/ws` is the documented one. */
export const WS_PATHS: ReadonlySet<string> = new Set(['/ws', '/v1/ws', '/']);

/** What the gateway runs over; the caller opened them and closes them after the gateway. */
export interface GatewayParts {
  config: ServerConfig;
  postOffice: PostOffice;
  bus: Bus;
  auth: Authenticator;
  log: Logger;
  /** Where a wake-up the bus refused is reported (logged once per burst, counted); default: a warning per failure. */
  reportFailure?: (source: 'wake_publish', err: unknown, context?: Record<string, unknown>) => void;
  /** Told each /readyz answer (the pobox_ready gauge). */
  onReadiness?: (ready: boolean) => void;
}

export interface Gateway {
  /** http://host:port */
  readonly url: string;
  /** ws://host:port/ws */
  readonly wsUrl: string;
  readonly port: number;
  readonly host: string;
  readonly events: TypedEmitter<GatewayEvents>;
  readonly router: HttpRouter;
  /** Live device sessions on this node. */
  sessions(): DeviceSession[];
  /** Graceful stop; safe to call more than once. Leaves the post office and bus open. */
  close(): Promise<void>;
}

function isEncoding(v: string): v is Encoding {
  return (ENCODINGS as readonly string[]).includes(v);
}

function sessionKey(user: string, device: string): string {
  return `${user}\u0000${device}`;
}

export async function startGateway(parts: GatewayParts, extensions: readonly ServerExtension[] = []): Promise<Gateway> {
  const { config, postOffice, bus, auth, log } = parts;
  const events = new TypedEmitter<GatewayEvents>((err) => log.warn({ err: String(err) }, 'gateway event listener threw'));

  // Every stored message wakes its user's sessions, on this node and (through the bus) others.
  // A resend of a stored id wakes them again: the first wake-up may have died with its node.
  // A wake-up that cannot be published is not kept for later in this process's memory:
  // live sessions' safety poll (safety-poll.ts) finds the message within session.safetyPollMs.
  const wakeMax = config.session.wakeMessageMaxBytes;
  const reportFailure = parts.reportFailure ?? ((_source, err, context) => log.warn({ ...context, err: String(err) }, 'wake publish failed'));
  const publish = (wake: Wake): void => {
    bus.publish(wake).catch((err: unknown) => reportFailure('wake_publish', err, { user: wake.user }));
  };
  const stopStored = postOffice.events.on('stored', ({ user, epoch, message }) => {
    publish(message.bytes <= wakeMax ? { user, epoch, seq: message.seq, message } : { user, epoch, seq: message.seq });
  });
  const stopResent = postOffice.events.on('resent', ({ user, epoch, seq }) => publish({ user, epoch, seq }));
  const stopWakes = (): void => {
    stopStored();
    stopResent();
  };

  // Ephemeral sends reach this node's sessions directly and other nodes through the bus.
  const ephemeral = new EphemeralRouter(bus);
  const stopEphemeral = postOffice.setEphemeralRoute(ephemeral.route);

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
    // `settled` never rejects (both outcomes map to undefined above).
    settled.then(
      () => sendsInFlight.delete(settled),
      () => undefined,
    );
  };

  const stopHealth = bus.onHealth((healthy) => {
    log.warn({ bus: bus.kind, healthy }, healthy ? 'bus healthy again' : 'bus unhealthy; sessions poll the store');
    for (const s of allSessions) s.setPolling(!healthy);
  });

  const router = new HttpRouter({ maxBodyBytes: config.limits.maxHttpBodyBytes, log, events, unavailable: () => shuttingDown });
  const readiness = new Readiness({ postOffice, bus, config: config.readiness, ...(parts.onReadiness ? { onResult: parts.onReadiness } : {}) });
  registerHttpApi(router, { postOffice, bus, auth, events, trackSend, readiness });

  const http: Server = createServer(httpServerOptions(config.http), router.handle);
  http.on('clientError', (err: Error & { code?: string }, socket: Duplex) => answerClientError(err, socket, log));

  // No client tracking (a Set entry and a close listener per connection): sessions are in
  // allSessions, and the refused connections still closing are kept in `refused` below.
  const wss = new WebSocketServer({ noServer: true, maxPayload: config.limits.maxFrameBytes, perMessageDeflate: false, clientTracking: false });
  wss.on('wsClientError', answerHandshakeError);
  const refused = new Set<WebSocket>();
  const connectLimiter = new AddressLimiter(config.limits.connectRate.perSecond, config.limits.connectRate.burst);

  /** Complete the upgrade and close at once with a code, so browsers can see why. */
  const refuse = (req: IncomingMessage, socket: Duplex, head: Buffer, code: number, reason: string, kind: GatewayEvents['refused']['reason']): void => {
    const remote = req.socket.remoteAddress ?? 'unknown';
    events.emit('refused', { reason: kind, remote });
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', ignore);
      refused.add(ws);
      ws.once('close', () => refused.delete(ws));
      const codeName =
        code === CloseCode.UNAUTHORIZED ? 'UNAUTHORIZED' : code === CloseCode.RATE_LIMITED ? 'RATE_LIMITED' : code === CloseCode.POLICY ? 'BAD_REQUEST' : 'UNAVAILABLE';
      ws.send(JSON.stringify({ type: 'error', code: codeName, message: reason }));
      ws.close(code, reason.slice(0, 120));
    });
  };

  // One object shared by every session: a closure made per connection here would keep
  // that connection's upgrade request (headers and all) alive as long as the session, and
  // an object (or a child logger) per connection is memory every idle connection holds.
  const sessionDeps: SessionDeps = {
    postOffice,
    bus,
    session: config.session,
    limits: config.limits,
    log,
    events,
    trackSend,
    shuttingDown: () => shuttingDown,
    nodeId: ephemeral.nodeId,
    onEnd: (s: DeviceSession): void => {
      allSessions.delete(s);
      ephemeral.remove(s);
      const key = sessionKey(s.user, s.device);
      if (live.get(key) === s) live.delete(key);
    },
  };
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Not a closure: one made here would hold this handler's scope (the upgrade request,
    // its headers and the first bytes) for as long as the socket lives.
    socket.on('error', ignore);
    void (async () => {
      let url: URL;
      try {
        url = parseRequestTarget(req.url);
      } catch (err) {
        const e = toPoboxError(err);
        socket.end(rawErrorResponse(HTTP_STATUS[e.code], e.code, e.message));
        return;
      }
      if (!WS_PATHS.has(url.pathname)) {
        socket.end(rawErrorResponse(404, 'NOT_FOUND', `no WebSocket endpoint at ${url.pathname}; use /ws`));
        return;
      }
      const remote = req.socket.remoteAddress ?? 'unknown';
      // One id per connection on every log line about it, as HTTP requests have (x-request-id when valid).
      const given = req.headers['x-request-id'];
      const givenId = typeof given === 'string' && /^[\w.:-]{1,64}$/.test(given) ? given : undefined;
      if (shuttingDown) return refuse(req, socket, head, CloseCode.GOING_AWAY, 'server is shutting down', 'shutting-down');
      const encoding = url.searchParams.get('encoding') ?? 'json';
      if (!isEncoding(encoding)) return refuse(req, socket, head, CloseCode.POLICY, `unknown encoding "${encoding.slice(0, 32)}"; use json or msgpack`, 'bad-request');
      if (!connectLimiter.take(remote)) return refuse(req, socket, head, CloseCode.RATE_LIMITED, 'too many connection attempts; back off', 'rate-limited');
      let principal;
      try {
        principal = await auth.verifyUserToken(bearerOf(req.headers.authorization, url));
      } catch (err) {
        log.info({ requestId: givenId ?? flatRandomId(), remote, err: toPoboxError(err).message }, 'connection refused: unauthorized');
        return refuse(req, socket, head, CloseCode.UNAUTHORIZED, toPoboxError(err).message, 'unauthorized');
      }
      if (shuttingDown) return refuse(req, socket, head, CloseCode.GOING_AWAY, 'server is shutting down', 'shutting-down');
      wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
        const { user, device } = principal;
        const session = new DeviceSession(ws, user, device, remote, sessionDeps, encoding, givenId);
        const key = sessionKey(user, device);
        const previous = live.get(key);
        live.set(key, session);
        allSessions.add(session);
        ephemeral.add(session);
        if (previous) previous.close(CloseCode.REPLACED, 'replaced by a newer connection of this device');
        // The session makes its random id only when a line needs it.
        if (log.isLevelEnabled('info')) log.info({ requestId: session.requestId, user, device, remote, replaced: previous !== undefined }, 'connection opened');
        events.emit('connection', { user, device, remote });
      });
    })().catch((err: unknown) => {
      log.error({ err: String(err) }, 'upgrade failed');
      socket.destroy();
    });
  });

  const attached: AttachedExtension[] = [];
  const closeExtensions = async (): Promise<void> => {
    for (const ext of attached.reverse()) await ext.close?.().catch((err: unknown) => log.warn({ err: String(err) }, 'extension close failed'));
  };
  /** Undo what start-up did so far, when it fails before listening. */
  const unwind = async (): Promise<void> => {
    await closeExtensions();
    stopWakes();
    stopEphemeral();
    stopHealth();
  };
  const ctx: ServerContext = { config, postOffice, bus, events, router, auth, log, sessions: () => [...allSessions] };
  try {
    for (const extend of extensions) {
      const ext = await extend(ctx);
      if (ext) attached.push(ext);
    }
  } catch (err) {
    await unwind();
    throw err;
  }

  const stopSafetyPoll = startSafetyPoll(() => allSessions, config.session.safetyPollMs);
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
    stopSafetyPoll();
    await unwind();
    throw err;
  });
  http.on('error', (err) => log.error({ err: err.message }, 'http server error'));

  const port = (http.address() as AddressInfo).port;
  const hostForUrl = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `http://${hostForUrl}:${port}`;
  log.info({ url, store: postOffice.store.engine, bus: bus.kind, listenBacklog: effectiveBacklog() ?? LISTEN_BACKLOG }, 'listening');

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
      for (const s of allSessions) s.ws.terminate();
      for (const ws of refused) ws.terminate();
      clearInterval(heartbeat);
      stopSafetyPoll();
      stopWakes();
      stopEphemeral();
      stopHealth();
      http.closeIdleConnections();
      await withTimeout(httpClosed, Math.min(2000, config.shutdownTimeoutMs));
      http.closeAllConnections();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await closeExtensions();
    })();
    return closing;
  };

  return {
    url,
    wsUrl: `ws://${hostForUrl}:${port}/ws`,
    port,
    host: config.host,
    events,
    router,
    sessions: () => [...allSessions],
    close,
  };
}

/** The error listener of sockets whose errors end them anyway (close does the clean-up). */
function ignore(): void {
  // nothing to do
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
