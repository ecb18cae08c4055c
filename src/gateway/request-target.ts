/**
 * The request target of an HTTP request or a WebSocket upgrade, as a URL.
 *
 * `new URL(req.url, base)` reads a target that starts with `//` as a network-path reference:
 * `GET //a` became host `a`, path `/`, and was served the demo page. A request target is
 * either origin-form (`/path?query`), taken as a path however many slashes it starts with,
 * or absolute-form (`http://host/path`, which HTTP/1.1 servers must accept); anything else
 * is refused.
 */
import { PoboxError } from '../core/errors.js';

const BASE = 'http://localhost';

export function parseRequestTarget(target: string | undefined): URL {
  const raw = target ?? '/';
  try {
    if (raw.startsWith('/')) return new URL(BASE + raw);
    if (/^https?:\/\//i.test(raw)) return new URL(raw);
  } catch {
    // falls through to the refusal below
  }
  throw new PoboxError('BAD_REQUEST', 'malformed request URL');
}
