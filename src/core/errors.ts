/**
 * One error vocabulary for the whole of pobox: the store, the post office, the HTTP
 * API, the WebSocket protocol and the client SDK all speak these codes.
 */
export const ErrorCode = {
  BAD_REQUEST: 'BAD_REQUEST',
  UNAUTHORIZED: 'UNAUTHORIZED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  CONFLICT: 'CONFLICT',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  MAILBOX_FULL: 'MAILBOX_FULL',
  SENDER_QUOTA: 'SENDER_QUOTA',
  RATE_LIMITED: 'RATE_LIMITED',
  UNAVAILABLE: 'UNAVAILABLE',
  INTERNAL: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const ERROR_CODES: readonly ErrorCode[] = Object.values(ErrorCode);

/** HTTP status for each code; the WebSocket protocol carries the code itself. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  // 409: the target's state forbids the request (an import into a mailbox that is not empty).
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  // 507 Insufficient Storage: the recipient's mailbox, not the request, is the problem.
  MAILBOX_FULL: 507,
  // 429: this sender, not the request, must slow down until the recipient catches up.
  SENDER_QUOTA: 429,
  RATE_LIMITED: 429,
  UNAVAILABLE: 503,
  INTERNAL: 500,
};

/** Codes after which the same request may succeed if simply tried again later. */
export const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['MAILBOX_FULL', 'SENDER_QUOTA', 'RATE_LIMITED', 'UNAVAILABLE']);

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  /** Which input field was wrong, when one was. */
  field?: string;
}

export class PoboxError extends Error {
  override readonly name = 'PoboxError';
  readonly code: ErrorCode;
  readonly field: string | undefined;

  constructor(code: ErrorCode, message: string, options?: { field?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.field = options?.field;
  }

  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }

  toJSON(): ErrorBody {
    return this.field === undefined ? { code: this.code, message: this.message } : { code: this.code, message: this.message, field: this.field };
  }
}

export function isPoboxError(err: unknown): err is PoboxError {
  return err instanceof PoboxError;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}

/** Wrap anything thrown by a dependency so callers only ever see a PoboxError. */
export function toPoboxError(err: unknown, fallback: ErrorCode = 'INTERNAL'): PoboxError {
  if (err instanceof PoboxError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new PoboxError(fallback, message, { cause: err });
}

// Named constructors for the errors raised in more than one place, so each reads the same
// wherever it comes from (engines, post office, HTTP API, admin CLI).

export function deviceNotRegistered(user: string, device: string, field?: string): PoboxError {
  return new PoboxError('NOT_FOUND', `device ${device} of ${user} is not registered`, field === undefined ? undefined : { field });
}

export function tooManyDevices(user: string, maxDevices: number): PoboxError {
  return new PoboxError('FORBIDDEN', `${user} already has the maximum of ${maxDevices} devices`);
}

/** `from` holds its full share of `to`'s mailbox (fair quotas); retry once some of it was read. */
export function senderQuotaExceeded(to: string, from: string): PoboxError {
  return new PoboxError('SENDER_QUOTA', `${from} holds its full share of the mailbox of ${to}; retry later`);
}

export function mailboxFull(to: string): PoboxError {
  return new PoboxError('MAILBOX_FULL', `mailbox of ${to} is full`);
}

/** An import (restore) needs an empty mailbox: one that never stored a message and has no device. */
export function mailboxNotEmpty(user: string): PoboxError {
  return new PoboxError('CONFLICT', `the mailbox of ${user} is not empty (it has stored messages or devices); an import needs an empty mailbox`, { field: 'user' });
}

export function ackBeyondLastSeq(upTo: number, lastSeq: number): PoboxError {
  return new PoboxError('BAD_REQUEST', `ack up to ${upTo} is beyond the last seq ${lastSeq}`, { field: 'upTo' });
}

/** A state machine (src/core/state-machine.ts) was asked for a move its table does not allow: a bug, never bad input. */
export function illegalTransition(machine: string, from: string, to: string): PoboxError {
  return new PoboxError('INTERNAL', `${machine}: no move from ${from} to ${to}`);
}

/** `what` (the store, the post office, the client, the bus) was closed and takes no more calls. */
export function closedError(what: string): PoboxError {
  return new PoboxError('UNAVAILABLE', `${what} is closed`);
}
