/**
 * Message bodies: text (a string, counted in UTF-8 bytes) or opaque bytes (a Uint8Array,
 * e.g. an end-to-end encrypted envelope, stored and returned byte for byte). Base64 is
 * how bytes travel in JSON (frames and the HTTP API, marked `binary: true`). Only
 * platform functions (TextEncoder, btoa, atob) so the browser SDK can use it too.
 */
export type Body = string | Uint8Array;

const encoder = new TextEncoder();

export function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

/** The size a body counts for against every limit: UTF-8 bytes of text, length of bytes. */
export function bodyByteLength(body: Body): number {
  return typeof body === 'string' ? encoder.encode(body).length : body.length;
}

/** Standard base64 (RFC 4648, with padding) of some bytes. */
export function bytesToBase64(bytes: Uint8Array): string {
  let bin = '';
  // In slices: spreading a whole 64 KiB array into one call can exceed the argument limit.
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

/** The bytes of standard base64 text; the caller has checked it is base64 (see BASE64). */
export function base64ToBytes(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Canonical standard base64 with padding (the empty string is the empty body). */
export const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
