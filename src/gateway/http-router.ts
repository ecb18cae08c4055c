/**
 * The HTTP side of the gateway over node:http: routes matched by find-my-way (method +
 * path pattern, `/v1/users/:user/devices`), JSON in and out with a body size limit, a
 * request id per request, and every error answered as `{error: {code, message, field?}}`
 * with the status from HTTP_STATUS.
 *
 * Other parts add routes with `router.route(...)` (metrics, the demo page); a handler
 * returns `{status, json}` or `{status, text, contentType}`, or writes `ctx.res` itself
 * and returns nothing.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import FindMyWay, { type HTTPMethod } from 'find-my-way';
import { HTTP_STATUS, PoboxError, toPoboxError } from '../core/errors.js';
import type { TypedEmitter } from '../core/emitter.js';
import type { GatewayEvents } from './events.js';
import type { Logger } from './logger.js';
import { parseRequestTarget } from './request-target.js';

export interface HttpContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** Path parameters, already URL-decoded. */
  params: Record<string, string>;
  requestId: string;
  log: Logger;
  /** The JSON request body (parsed once, size-limited); BAD_REQUEST when not JSON. */
  json(): Promise<unknown>;
  /** Facts for the error log line (user, device); never bodies or credentials. */
  tag(fields: Record<string, string>): void;
}

export type HttpReply = { status?: number; json?: unknown; text?: string; contentType?: string; headers?: Record<string, string> };
export type HttpHandler = (ctx: HttpContext) => Promise<HttpReply | void> | HttpReply | void;

interface Route {
  pattern: string;
  handler: HttpHandler;
}

/** find-my-way calls no handler of ours: it only finds the route, kept in its store. */
const unused = (): void => undefined;

export class HttpRouter {
  /** maxParamLength: room for any id (their schemas bound them, not the router). */
  private readonly fmw = FindMyWay({ ignoreTrailingSlash: true, maxParamLength: 8192 });
  private readonly routes: Array<[string, string]> = [];
  private readonly methods = new Set<HTTPMethod>();

  constructor(private readonly opts: { maxBodyBytes: number; log: Logger; events: TypedEmitter<GatewayEvents>; unavailable: () => boolean }) {}

  /** Add a route. Later routes never shadow earlier ones with the same method and pattern. */
  route(method: string, pattern: string, handler: HttpHandler): this {
    const m = method.toUpperCase() as HTTPMethod;
    if (this.fmw.hasRoute(m, pattern)) return this;
    const route: Route = { pattern, handler };
    this.fmw.on(m, pattern, unused, route);
    this.methods.add(m);
    this.routes.push([m, pattern]);
    return this;
  }

  /** The routes so far, as [method, pattern] pairs (for docs checks and the demo page). */
  list(): Array<[string, string]> {
    return this.routes.map(([m, p]) => [m, p]);
  }

  /**
   * The route for a request (HEAD is answered by the GET route) and its parameters, each
   * URL-decoded here: find-my-way is handed the path with every `%` escaped, so a
   * parameter that is not valid URL encoding is a BAD_REQUEST naming it, not a miss.
   */
  private match(method: string, path: string): { route: Route; params: Record<string, string> } {
    const escaped = path.replaceAll('%', '%25');
    const found = this.fmw.find(method as HTTPMethod, escaped) ?? (method === 'HEAD' ? this.fmw.find('GET', escaped) : null);
    if (!found) {
      const pathKnown = [...this.methods].some((m) => this.fmw.find(m, escaped) !== null);
      throw new PoboxError('NOT_FOUND', pathKnown ? `${method} is not supported on ${path}` : `no route for ${path}`);
    }
    return { route: found.store as Route, params: found.params as Record<string, string> };
  }

  /** The node:http request listener. Never throws; never rejects. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const started = Date.now();
    const given = req.headers['x-request-id'];
    const requestId = typeof given === 'string' && /^[\w.:-]{1,64}$/.test(given) ? given : randomUUID();
    res.setHeader('x-request-id', requestId);
    const tags: Record<string, string> = {};
    let routeName = '(none)';
    const run = async (): Promise<void> => {
      const url = parseRequestTarget(req.url);
      const { route, params: raw } = this.match((req.method ?? 'GET').toUpperCase(), url.pathname);
      routeName = route.pattern;
      if (this.opts.unavailable() && !url.pathname.startsWith('/healthz')) throw new PoboxError('UNAVAILABLE', 'server is shutting down');
      const params: Record<string, string> = {};
      for (const [key, value] of Object.entries(raw)) {
        try {
          params[key] = decodeURIComponent(value);
        } catch {
          throw new PoboxError('BAD_REQUEST', `path parameter ${key} is not valid URL encoding`, { field: key });
        }
      }
      let body: Promise<unknown> | undefined;
      const ctx: HttpContext = {
        req,
        res,
        url,
        params,
        requestId,
        log: this.opts.log,
        json: () => (body ??= readJson(req, this.opts.maxBodyBytes)),
        tag: (fields) => Object.assign(tags, fields),
      };
      const reply = await route.handler(ctx);
      if (reply && !res.headersSent) send(res, reply);
      else if (!res.writableEnded && !res.headersSent) send(res, { status: 204 });
    };
    const answered = (): void => {
      this.opts.events.emit('http', { method: req.method ?? 'GET', route: routeName, status: res.statusCode, ms: Date.now() - started });
    };
    // One then() with both outcomes, not a catch/catch/finally chain: three promises fewer per request.
    run().then(answered, (err: unknown) => {
      try {
        const e = toPoboxError(err);
        this.opts.events.emit('error', { code: e.code, via: 'http', ...(tags['user'] ? { user: tags['user'] } : {}), ...(tags['device'] ? { device: tags['device'] } : {}) });
        const line = { requestId, route: routeName, method: req.method, code: e.code, err: e.message, ...tags };
        if (e.code === 'INTERNAL' || e.code === 'UNAVAILABLE') this.opts.log.error(line, 'request failed');
        else this.opts.log.info(line, 'request rejected');
        if (res.headersSent) {
          res.destroy();
        } else {
          // After an oversized or unread body, close rather than read the rest of it.
          if (!req.complete) res.setHeader('connection', 'close');
          send(res, { status: HTTP_STATUS[e.code], json: { error: e.toJSON() } });
        }
      } catch (err2) {
        this.opts.log.error({ requestId, err: String(err2) }, 'failed to answer request');
      }
      answered();
    });
  };
}

function send(res: ServerResponse, reply: HttpReply): void {
  const status = reply.status ?? 200;
  if (reply.headers) for (const [k, v] of Object.entries(reply.headers)) res.setHeader(k, v);
  if (reply.json !== undefined) {
    const text = JSON.stringify(reply.json);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  } else if (reply.text !== undefined) {
    res.writeHead(status, { 'content-type': reply.contentType ?? 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(reply.text) });
    res.end(reply.text);
  } else {
    res.writeHead(status);
    res.end();
  }
}

async function readJson(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    throw new PoboxError('PAYLOAD_TOO_LARGE', `request body is ${declared} bytes; the limit is ${maxBytes}`);
  }
  // Event-based rather than for-await: leaving a for-await early destroys the socket,
  // and we still want to answer 413.
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > maxBytes) {
        over = true;
        chunks.length = 0;
        reject(new PoboxError('PAYLOAD_TOO_LARGE', `request body exceeds the limit of ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve());
    req.on('error', (err) => reject(new PoboxError('BAD_REQUEST', `request body could not be read: ${err.message}`)));
  });
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new PoboxError('BAD_REQUEST', 'request body must be a JSON object');
  try {
    return JSON.parse(text);
  } catch {
    throw new PoboxError('BAD_REQUEST', 'request body is not valid JSON');
  }
}
