/**
 * Requests Node's HTTP parser refuses before any route sees them (an unknown method: 405, a
 * header block over the limit: 431, a malformed request line, a request not finished in time)
 * are answered like every other error: a status that says what went wrong and the JSON
 * body `{"error":{"code","message"}}` of docs/openapi.yaml, then the connection is closed
 * (the parser cannot continue on it). When the socket can no longer take a reply (reset,
 * or a response already under way) it is destroyed instead.
 */
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ErrorCode } from '../core/errors.js';

interface ParserVerdict {
  status: number;
  code: ErrorCode;
  message: string;
}

/**
 * Statuses only the parser answers, more precise than the code's own (HTTP_STATUS): an
 * unknown method, a request not received in time, a header block too large.
 */
export const PARSER_STATUS: Readonly<Record<number, ErrorCode>> = { 405: 'BAD_REQUEST', 408: 'BAD_REQUEST', 431: 'PAYLOAD_TOO_LARGE' };

/** What to answer for a parser error code (llhttp's HPE_* or Node's ERR_HTTP_*). */
export function verdictFor(errCode: string | undefined): ParserVerdict {
  switch (errCode) {
    case 'HPE_INVALID_METHOD':
      // 405 rather than 501: a 5xx would say the server failed, and nothing did.
      return { status: 405, code: 'BAD_REQUEST', message: 'request method is not supported' };
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, code: 'PAYLOAD_TOO_LARGE', message: 'request header fields are too large' };
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return { status: 413, code: 'PAYLOAD_TOO_LARGE', message: 'chunk extensions are too large' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'ERR_HTTP_HEADERS_TIMEOUT':
      return { status: 408, code: 'BAD_REQUEST', message: 'request was not received in time' };
    case 'HPE_INVALID_VERSION':
      return { status: 400, code: 'BAD_REQUEST', message: 'HTTP version is not supported' };
    default:
      return { status: 400, code: 'BAD_REQUEST', message: 'malformed HTTP request' };
  }
}

/** The http.Server 'clientError' listener. */
export function answerClientError(err: Error & { code?: string }, socket: Duplex, log: { debug: (o: object, m: string) => void }): void {
  log.debug({ err: err.message, code: err.code }, 'http client error');
  const busy = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
  if (err.code === 'ECONNRESET' || !socket.writable || busy) {
    socket.destroy();
    return;
  }
  const v = verdictFor(err.code);
  socket.end(rawErrorResponse(v.status, v.code, v.message));
}

/**
 * The ws server's 'wsClientError' listener: a handshake it refuses (a bad Sec-WebSocket-Key or
 * version, a missing Upgrade header, a method other than GET) gets the JSON error body too,
 * instead of ws's own text/html answer. ws names the fault in the message only; the method is
 * the one fault that is a 405.
 */
export function answerHandshakeError(err: Error, socket: Duplex, req: { method?: string | undefined }): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const status = req.method !== 'GET' ? 405 : 400;
  socket.end(rawErrorResponse(status, 'BAD_REQUEST', `WebSocket handshake refused: ${err.message}`));
}

/** A complete HTTP/1.1 error response with the JSON error body, for sockets no router answers. */
export function rawErrorResponse(status: number, code: ErrorCode, message: string): string {
  const body = JSON.stringify({ error: { code, message } });
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    'content-type: application/json; charset=utf-8\r\n' +
    `content-length: ${Buffer.byteLength(body)}\r\n` +
    'connection: close\r\n\r\n' +
    body
  );
}
