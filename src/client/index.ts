/**
 * pobox client SDK (`pobox/client`), for browsers and Node.
 *
 * ```ts
 * import { connect } from 'pobox/client';
 * import { WebSocket } from 'ws'; // Node 20 only; browsers and Node >= 22 have a global WebSocket
 *
 * const client = connect('ws://127.0.0.1:8080/ws', token, { WebSocket });
 * client.on('message', async (m) => { await save(m); }); // acked once this resolves
 * const { seq } = await client.send({ to: 'bob', body: 'hi' }); // resolves once durable
 * client.close();
 * ```
 */
import { PoboxClient } from './client.js';
import type { ClientOptions, TokenSource } from './types.js';

export { PoboxClient, ConnectionClosedError, toSocketUrl } from './client.js';
export { Backoff, backoffCeiling, backoffDelay, type BackoffOptions, type BackoffStep } from '../core/backoff.js';
export { TypedEmitter, type Listener } from '../core/emitter.js';
export { PoboxError, isPoboxError, ErrorCode, RETRYABLE } from '../core/errors.js';
export { CloseCode, PROTOCOL_VERSION, type Encoding, type RecipientResult } from '../core/protocol.js';
export type { GapNotice, GapReason } from '../core/protocol.js';
export type {
  AckMode,
  ClientEvents,
  ClientMessage,
  ClientOptions,
  ClientState,
  ClientStats,
  EphemeralClientMessage,
  GapEvent,
  SendOptions,
  SendReceipt,
  StateChange,
  TokenSource,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';

/**
 * Connect one device to pobox. `urls` may list several gateway nodes of the same
 * deployment: each reconnect moves to the next. The token (or a function returning a
 * fresh one per attempt) is sent as the `token` query parameter.
 */
export function connect(urls: string | readonly string[], token: TokenSource, options?: ClientOptions): PoboxClient {
  return new PoboxClient(urls, token, options);
}
