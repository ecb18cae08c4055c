/**
 * GET /metrics: the Prometheus exposition of this server's registry. It tells a lot
 * about traffic, so it needs an API key with the admin scope (`Authorization: Bearer`),
 * like every other admin route; Prometheus sends it with `authorization.credentials`.
 */
import { PoboxError } from '../core/errors.js';
import { bearerOf, type Authenticator } from '../gateway/auth.js';
import type { HttpRouter } from '../gateway/http-router.js';
import type { PoboxMetrics } from '../metrics/metrics.js';

export async function requireAdmin(auth: Authenticator, authorization: string | undefined): Promise<void> {
  const p = await auth.authenticate(bearerOf(authorization, undefined));
  if (p.kind !== 'key' || !p.scopes.has('admin')) throw new PoboxError('FORBIDDEN', 'this endpoint needs an API key with the admin scope');
}

export function registerMetricsRoute(router: HttpRouter, auth: Authenticator, metrics: PoboxMetrics): void {
  router.route('GET', '/metrics', async (ctx) => {
    await requireAdmin(auth, ctx.req.headers.authorization);
    const { contentType, body } = await metrics.scrape();
    return { text: body, contentType };
  });
}
