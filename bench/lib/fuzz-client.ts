/**
 * Plays the inputs of fuzz-inputs.ts against a running pobox server (in-process in the
 * property tests, a `pobox serve` child in bench/fuzz.ts) and describes each answer in a
 * few words: the HTTP status and error code, the WebSocket frames and close code, and
 * whether the answer was typed (the JSON error body docs/openapi.yaml and
 * docs/protocol.md promise) or never came (a hang).
 */
import { request, Agent } from 'node:http';
import { connect } from 'node:net';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { ERROR_CODES, HTTP_STATUS, type ErrorCode } from '../../src/core/errors.js';
import { CloseCode } from '../../src/core/protocol.js';
import { mintToken } from '../../src/gateway/auth.js';
import { PARSER_STATUS } from '../../src/gateway/http-client-error.js';
import type { HttpInput, WsInput, WsSession } from './fuzz-inputs.js';

/** The credentials the server under test was started with. */
export interface FuzzSecrets {
  secret: string;
  sendKey: string;
  adminKey: string;
}

const tokenCache = new Map<string, { token: string; until: number }>();

/** Turn a credential placeholder from fuzz-inputs.ts into the text sent as `Bearer <x>`. */
export async function resolveCredential(placeholder: string | undefined, s: FuzzSecrets, user: string, device: string): Promise<string | undefined> {
  switch (placeholder) {
    case undefined:
      return undefined;
    case '$user': {
      // Signing is a good part of the client's CPU in a long run: one token per device, reused for a minute.
      const key = `${user}\u0000${device}`;
      const cached = tokenCache.get(key);
      if (cached && cached.until > Date.now()) return cached.token;
      const token = await mintToken({ secret: s.secret, user, device, ttlSeconds: 600 });
      tokenCache.set(key, { token, until: Date.now() + 60_000 });
      return token;
    }
    case '$expired':
      return mintToken({ secret: s.secret, user, device, ttlSeconds: 1, now: Date.now() - 3_600_000 });
    case '$wrong-secret':
      return mintToken({ secret: `${s.secret}-but-not-this-one`, user, device });
    case '$alg-none': {
      const part = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
      return `${part({ alg: 'none', typ: 'JWT' })}.${part({ sub: user, device, exp: Math.floor(Date.now() / 1000) + 600 })}.`;
    }
    case '$bad-claims':
      return new SignJWT({ device: '../etc' })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('has space')
        .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
        .sign(new TextEncoder().encode(s.secret));
    case '$key:send':
      return s.sendKey;
    case '$key:admin':
      return s.adminKey;
    default:
      // Garbage: keep only what may stand in a header, so the request can be made at all.
      return placeholder.replace(/[^\x21-\x7e]/g, '');
  }
}

/** Close codes docs/protocol.md documents (plus the ones ws itself uses on protocol errors). */
const KNOWN_CLOSE_CODES: ReadonlySet<number> = new Set([...Object.values(CloseCode), 1002, 1005, 1006, 1007]);
const SERVER_FRAME_TYPES: ReadonlySet<string> = new Set(['welcome', 'message', 'caughtUp', 'accepted', 'acked', 'error', 'pong']);

export interface WsOutcome {
  /** One word per server frame: `welcome`, `accepted`, `error:BAD_REQUEST`, ... */
  answers: string[];
  /** The close code, when the connection was closed (by either side). */
  close?: number;
  /** The HTTP status when the upgrade was answered without switching protocols. */
  upgradeStatus?: number;
  /** No pong and no close within the deadline after the last frame. */
  hang: boolean;
  /** Frames that are not documented server frames, or errors with an unknown code. */
  untyped: string[];
  /** Frames written to the open socket (the fuzz frames only, not hello or the final ping). */
  sent: number;
}

function describeFrame(text: string): { word: string; typed: boolean } {
  let f: unknown;
  try {
    f = JSON.parse(text);
  } catch {
    return { word: 'not-json', typed: false };
  }
  if (typeof f !== 'object' || f === null) return { word: 'not-object', typed: false };
  const { type, code } = f as { type?: unknown; code?: unknown };
  if (typeof type !== 'string' || !SERVER_FRAME_TYPES.has(type)) return { word: `unknown:${String(type).slice(0, 20)}`, typed: false };
  if (type !== 'error') return { word: type, typed: true };
  const known = typeof code === 'string' && (ERROR_CODES as readonly string[]).includes(code);
  return { word: `error:${known ? code : 'untyped'}`, typed: known };
}

/**
 * Open a connection with the session's credential, optionally say hello, send its frames,
 * then a ping: the session is over when the matching pong or a close arrives. Nothing
 * within `deadlineMs` of a step is a hang.
 */
export async function runWsSession(wsUrl: string, session: WsSession, token: string | undefined, deadlineMs: number, opts: { localAddress?: string } = {}): Promise<WsOutcome> {
  const out: WsOutcome = { answers: [], hang: false, untyped: [], sent: 0 };
  const marker = Math.random();
  const ws = new WebSocket(wsUrl, {
    ...(token !== undefined ? { headers: { authorization: `Bearer ${token}` } } : {}),
    ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    maxPayload: 64 * 1024 * 1024,
  });
  let welcomed = false;
  let ponged = false;
  let closed = false;
  let wake: (() => void) | undefined;
  const poke = (): void => wake?.();
  ws.on('message', (data, isBinary) => {
    const { word, typed } = isBinary ? { word: 'binary', typed: false } : describeFrame(data.toString());
    out.answers.push(word);
    if (!typed) out.untyped.push(isBinary ? '(binary)' : data.toString().slice(0, 200));
    if (word === 'welcome') welcomed = true;
    if (word === 'pong' && (JSON.parse(data.toString()) as { t?: number }).t === marker) ponged = true;
    poke();
  });
  ws.on('unexpected-response', (_req, res) => {
    out.upgradeStatus = res.statusCode;
    res.resume();
    ws.terminate();
  });
  ws.on('close', (code) => {
    closed = true;
    out.close ??= code;
    poke();
  });
  ws.on('open', poke);
  ws.on('error', () => undefined);

  /** Wait until `cond` holds or the socket closes; false when the deadline passed first. */
  const until = (cond: () => boolean): Promise<boolean> =>
    new Promise((resolve) => {
      const check = (): void => {
        if (cond() || closed) {
          clearTimeout(timer);
          wake = undefined;
          resolve(true);
        }
      };
      const timer = setTimeout(() => {
        wake = undefined;
        resolve(false);
      }, deadlineMs);
      wake = check;
      check();
    });

  const send = (input: WsInput): boolean => {
    if (ws.readyState !== WebSocket.OPEN) return false;
    if (input.kind === 'binary') ws.send(input.bytes, { binary: true });
    else ws.send(input.text);
    return true;
  };

  if (!(await until(() => ws.readyState === WebSocket.OPEN))) out.hang = true;
  else if (ws.readyState === WebSocket.OPEN) {
    if (session.hello) {
      send({ kind: 'text', text: JSON.stringify({ type: 'hello', protocol: 1 }) });
      if (!(await until(() => welcomed))) out.hang = true;
    }
    if (!out.hang) {
      for (const f of session.frames) if (send(f)) out.sent++;
      send({ kind: 'text', text: JSON.stringify({ type: 'ping', t: marker }) });
      if (!(await until(() => ponged))) out.hang = true;
    }
  }
  // Our own close needs no waiting for: the answers are in (ws ends the handshake itself).
  if (!closed) ws.close(1000);
  if (out.close !== undefined && !KNOWN_CLOSE_CODES.has(out.close)) out.untyped.push(`close ${out.close}`);
  return out;
}

export interface HttpOutcome {
  /** 0 when no answer came (hang) or the connection failed. */
  status: number;
  code?: ErrorCode;
  /** The answer is a success, or the documented JSON error whose code matches the status. */
  typed: boolean;
  hang: boolean;
  /** The first bytes of an untyped answer, for the findings list. */
  sample?: string;
}

/**
 * A 5xx that means the server failed. 501 (unknown method) and 505 (HTTP version) with the
 * typed body are refusals of the request, which docs/openapi.yaml allows for parser errors.
 */
export function isServerFailure(status: number, typed: boolean): boolean {
  return status >= 500 && !(typed && (status === 501 || status === 505));
}

export const keepAliveAgent = (): Agent => new Agent({ keepAlive: true, maxSockets: 64 });

/** Judge an HTTP answer: success, or `{error: {code, message}}` with the matching status. */
export function judgeHttp(status: number, body: string, method: string): Omit<HttpOutcome, 'hang'> {
  if (status < 400) return { status, typed: true };
  if (method === 'HEAD') return { status, typed: true };
  try {
    const j = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
    const code = j.error?.code;
    if (typeof code === 'string' && (ERROR_CODES as readonly string[]).includes(code) && typeof j.error?.message === 'string') {
      return { status, code: code as ErrorCode, typed: HTTP_STATUS[code as ErrorCode] === status || PARSER_STATUS[status] === code };
    }
  } catch {
    // not JSON: untyped, reported below
  }
  return { status, typed: false, sample: body.slice(0, 200) };
}

/**
 * The server's host and port, refusing anything but loopback: fuzz traffic never leaves the machine.
 * The path is sent as given, never resolved against the base: `new URL('//x', base)` would
 * make `x` the host and send the request elsewhere.
 */
function loopbackTarget(baseUrl: string): { host: string; port: number } {
  const u = new URL(baseUrl);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (!/^127\.\d+\.\d+\.\d+$/.test(host) && host !== 'localhost' && host !== '::1') throw new Error(`fuzz target ${baseUrl} is not a loopback address`);
  return { host, port: Number(u.port) };
}

/** Percent-encode what Node's client refuses to put on a request line (controls, space, non-ASCII); keep the rest raw. */
function rawPath(path: string): string {
  return path.replace(/[^\x21-\x7e]/gu, (c) => encodeURIComponent(c));
}

export function runHttp(baseUrl: string, input: HttpInput, credential: string | undefined, deadlineMs: number, agent?: Agent): Promise<HttpOutcome> {
  const target = loopbackTarget(baseUrl);
  return new Promise((resolve) => {
    let done = false;
    const finish = (o: HttpOutcome): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(o);
    };
    const headers: Record<string, string> = { ...input.headers };
    // Node's client sends a GET/DELETE/OPTIONS body with neither length nor chunking, so the
    // server would read it as the next request: say how long it is.
    if (input.body !== undefined) headers['content-length'] = String(Buffer.byteLength(input.body));
    if (credential !== undefined) headers['authorization'] = `Bearer ${credential}`;
    let req;
    try {
      req = request({ ...target, path: rawPath(input.path), method: input.method, headers, ...(agent ? { agent } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => finish({ ...judgeHttp(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'), input.method), hang: false }));
        res.on('error', () => finish({ status: res.statusCode ?? 0, typed: false, hang: false, sample: 'response aborted' }));
      });
    } catch (err) {
      // The client refused to build it (an invalid header or path): not a server answer.
      resolve({ status: -1, typed: true, hang: false, sample: (err as Error).message });
      return;
    }
    const timer = setTimeout(() => {
      req.destroy();
      finish({ status: 0, typed: false, hang: true });
    }, deadlineMs);
    // The server may close early (413 before the body is read): that is an answer, not a failure.
    req.on('error', (err) => finish({ status: 0, typed: false, hang: false, sample: `connection error: ${err.message}` }));
    req.end(input.body === undefined ? undefined : input.body);
  });
}

export interface RawOutcome {
  /** The status of the first answer, 0 when the server closed without answering. */
  status: number;
  typed: boolean;
  hang: boolean;
  sample?: string;
}

/**
 * Write raw bytes to the HTTP port, half-close, and read until the server closes. Node's
 * parser answers malformed requests itself (the server's `clientError` handler).
 */
export function runRaw(host: string, port: number, bytes: string, deadlineMs: number): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host, port });
    let done = false;
    const finish = (hang: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      if (!m) {
        resolve({ status: 0, typed: true, hang, ...(text ? { sample: text.slice(0, 200) } : {}) });
        return;
      }
      const status = Number(m[1]);
      if (status === 101) return resolve({ status, typed: true, hang: false });
      const split = text.indexOf('\r\n\r\n');
      const body = split >= 0 ? text.slice(split + 4) : '';
      const j = judgeHttp(status, body, /^HEAD /.test(bytes) ? 'HEAD' : 'GET');
      // Answered: whatever the socket did afterwards is not a hang.
      resolve({ status, typed: j.typed, hang: false, ...(j.typed ? {} : { sample: text.slice(0, 200) }) });
    };
    const timer = setTimeout(() => finish(chunks.length === 0), deadlineMs);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      // Keep-alive answers leave the socket open: stop once one full answer is in.
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      if (split < 0) return;
      const len = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, split));
      if (/^HTTP\/1\.1 101/.test(text) || (len && text.length - split - 4 >= Number(len[1]))) finish(false);
    });
    socket.on('close', () => finish(false));
    socket.on('error', () => finish(false));
    socket.write(bytes, 'latin1', () => socket.end());
  });
}
